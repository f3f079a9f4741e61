package cli

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// JoinNames lists names for a flag's help or a message: "a, b, c".
func JoinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// NameList reads the list flag flagName (as typed: "--scenario") of names,
// each one of names, at least one.
func NameList[T ~string](flagName, s string, names []T) ([]string, error) {
	list, err := SplitList(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s is empty: choose from %s", flagName, JoinNames(names))
	}
	for _, name := range list {
		if !slices.Contains(names, T(name)) {
			return nil, fmt.Errorf("%s %q: choose from %s", flagName, name, JoinNames(names))
		}
	}
	return list, nil
}

// IntList reads the list flag flagName of whole numbers from min to max
// (MaxCount for no bound of its own), at least one; note, if any, says
// what they are.
func IntList(flagName, s string, min, max int, note string) ([]int, error) {
	list, err := SplitList(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	valid := fmt.Sprintf("whole numbers from %d to %d", min, max)
	if max == MaxCount {
		valid = fmt.Sprintf("whole numbers, %d or more", min)
	}
	if note != "" {
		valid += " (" + note + ")"
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s is empty: give comma-separated %s", flagName, valid)
	}
	var out []int
	for _, item := range list {
		n, err := strconv.Atoi(item)
		if err != nil || n < min || n > max {
			return nil, fmt.Errorf("%s %q: give comma-separated %s", flagName, item, valid)
		}
		out = append(out, n)
	}
	return out, nil
}

// Plural is "1 CPU", "2 CPUs".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
