// Package docs holds ringwatch's documentation pages, which README.md links;
// its test checks that every link between them resolves.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// pages are the Markdown files whose links are checked, relative to this
// directory: README.md and every page here.
func pages(t *testing.T) []string {
	t.Helper()
	here, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(here) == 0 {
		t.Fatal("no pages in docs/")
	}
	return append([]string{"../README.md"}, here...)
}

// link is a Markdown inline link's target: [text](target).
var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// prose is a page's text outside fenced code blocks and inline code spans,
// line by line, so that a link shown as code is not taken for one.
func prose(text string) []string {
	var out []string
	inCode := false
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			out = append(out, "")
			continue
		}
		if inCode {
			out = append(out, "")
			continue
		}
		out = append(out, regexp.MustCompile("`[^`]*`").ReplaceAllString(line, ""))
	}
	return out
}

// anchor is the anchor GitHub gives a heading: lower case, spaces to
// hyphens, other punctuation dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors are the anchors of a page's headings, with GitHub's -1, -2 for a
// heading repeated.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	inCode := false
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		a := anchor(strings.TrimSpace(strings.TrimLeft(line, "#")))
		if n := seen[a]; n > 0 {
			out[a+"-"+strconv.Itoa(n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// brokenLinks lists each relative link of page (read from text) that leads
// to no file, or to no heading of the page it names.
func brokenLinks(t *testing.T, page, text string) []string {
	t.Helper()
	var broken []string
	for i, line := range prose(text) {
		for _, m := range link.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			body, err := os.ReadFile(path)
			if err != nil {
				if _, serr := os.Stat(path); serr != nil || frag != "" {
					broken = append(broken, page+":"+strconv.Itoa(i+1)+": "+target+": no such file")
				}
				continue
			}
			if frag != "" && (!strings.HasSuffix(path, ".md") || !anchors(string(body))[frag]) {
				broken = append(broken, page+":"+strconv.Itoa(i+1)+": "+target+": no such heading")
			}
		}
	}
	return broken
}

// TestLinksResolve: every relative link in README.md and docs/ leads to a
// file of the repository, and every #anchor to a heading of its page.
func TestLinksResolve(t *testing.T) {
	links := 0
	for _, page := range pages(t) {
		body, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range prose(string(body)) {
			links += len(link.FindAllString(line, -1))
		}
		for _, b := range brokenLinks(t, page, string(body)) {
			t.Error(b)
		}
	}
	if links < 50 {
		t.Fatalf("%d links in README and docs/: is the link pattern still right?", links)
	}
}

// TestBrokenLinksAreFound: the check finds a missing file, a missing
// heading, and passes a heading repeated on its page.
func TestBrokenLinksAreFound(t *testing.T) {
	page := filepath.Join(t.TempDir(), "page.md")
	text := "# Title\n\n## Same\n\n## Same\n\n[a](#title) [b](#same-1) [c](#nowhere) [d](gone.md) [e](page.md#same)\n" +
		"```\n[f](#in-code)\n```\n`[g](#in-span)` [h](https://example.com/x#y)\n"
	if err := os.WriteFile(page, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got := brokenLinks(t, page, text)
	if len(got) != 2 || !strings.Contains(got[0], "#nowhere: no such heading") || !strings.Contains(got[1], "gone.md: no such file") {
		t.Errorf("broken links %q; want #nowhere and gone.md alone", got)
	}
}

// TestLayoutNamesEveryPackage: design.md's Layout table has a row for every
// package under internal/ and pkg/, and for cmd/ringwatch, and names no
// package that is gone, so a newcomer's map of the tree stays true.
func TestLayoutNamesEveryPackage(t *testing.T) {
	body, err := os.ReadFile("design.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(body), "\n## Layout\n")
	if !ok {
		t.Fatal("design.md has no Layout section")
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (.+?) \\|").FindAllStringSubmatch(layout, -1) {
		for _, p := range regexp.MustCompile("`([a-z/]+)`").FindAllStringSubmatch(m[1], -1) {
			named[strings.TrimSuffix(p[1], "/")] = true
		}
	}
	have := map[string]bool{"cmd/ringwatch": true, "bpf": true}
	for _, root := range []string{"internal", "pkg"} {
		err := filepath.WalkDir(filepath.Join("..", root), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(path, ".go") {
				rel, _ := filepath.Rel("..", filepath.Dir(path))
				have[filepath.ToSlash(rel)] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for p := range have {
		if !named[p] {
			t.Errorf("design.md's Layout has no row for %s", p)
		}
	}
	for p := range named {
		if !have[p] {
			t.Errorf("design.md's Layout names %s, which is not a package here", p)
		}
	}
}
