package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomize "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/ringwatch/ringwatch/internal/control"
	"github.com/ringwatch/ringwatch/internal/privilege"
	"github.com/ringwatch/ringwatch/internal/testenv"
)

// wantCapabilities are the capabilities the DaemonSet's container must add
// after dropping all, and no more: internal/privilege's Load set, what
// `ringwatch run` needs to load its tracing programs, attach them and map
// their rings, less CAP_DAC_READ_SEARCH, which only a user other than root
// needs to read tracefs (uid 0 owns it), in Kubernetes' spelling (no CAP_).
// TestDaemonSet holds the manifest to this list, and
// TestDaemonSetCapabilitiesSuffice holds the list to the running kernel:
// enough with all of them, refused without any one.
var wantCapabilities = func() []corev1.Capability {
	var caps []corev1.Capability
	for _, name := range privilege.Load {
		if name != "CAP_DAC_READ_SEARCH" {
			caps = append(caps, corev1.Capability(strings.TrimPrefix(name, "CAP_")))
		}
	}
	slices.Sort(caps)
	return caps
}()

const manifests = "kubernetes"

// strictDecoder decodes YAML into the registered Kubernetes types and fails
// on a field they do not have, or one given twice.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
}

type objects struct {
	namespace      *corev1.Namespace
	daemonSet      *appsv1.DaemonSet
	service        *corev1.Service
	serviceMonitor *monitoringv1.ServiceMonitor
}

// decodeObjects decodes docs strictly, one object each, and sorts them by
// kind; any kind other than the four expected fails.
func decodeObjects(t *testing.T, what string, docs [][]byte) objects {
	t.Helper()
	dec := strictDecoder(t)
	var o objects
	for _, doc := range docs {
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, doc)
		}
		switch v := obj.(type) {
		case *corev1.Namespace:
			o.namespace = v
		case *appsv1.DaemonSet:
			o.daemonSet = v
		case *corev1.Service:
			o.service = v
		case *monitoringv1.ServiceMonitor:
			o.serviceMonitor = v
		default:
			t.Fatalf("%s: unexpected %v", what, gvk)
		}
	}
	if o.namespace == nil || o.daemonSet == nil || o.service == nil || o.serviceMonitor == nil {
		t.Fatalf("%s: want a Namespace, a DaemonSet, a Service and a ServiceMonitor, got %+v", what, o)
	}
	return o
}

// TestManifestsDecodeStrictly decodes every file the kustomization lists,
// and the kustomization itself, into their API types, and builds the
// kustomization as kubectl apply -k would.
func TestManifestsDecodeStrictly(t *testing.T) {
	var k kustomize.Kustomization
	if err := yaml.UnmarshalStrict([]byte(readFile(t, filepath.Join(manifests, "kustomization.yaml"))), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != kustomize.KustomizationKind || k.APIVersion != kustomize.KustomizationVersion {
		t.Errorf("kustomization.yaml is a %s %s", k.APIVersion, k.Kind)
	}
	// Every file in the directory is listed, so none is left unapplied.
	entries, err := os.ReadDir(manifests)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() != "kustomization.yaml" {
			files = append(files, e.Name())
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(k.Resources)), files) {
		t.Errorf("kustomization.yaml lists %v; the directory has %v", k.Resources, files)
	}
	var docs [][]byte
	for _, f := range k.Resources {
		docs = append(docs, []byte(readFile(t, filepath.Join(manifests, f))))
	}
	decodeObjects(t, "deploy/kubernetes", docs)

	built := kustomizeBuild(t)
	if got := built.daemonSet.Namespace; got != k.Namespace || got == "" || built.namespace.Name != got {
		t.Errorf("kustomize put the DaemonSet in namespace %q, the Namespace is %q; kustomization.yaml says %q",
			got, built.namespace.Name, k.Namespace)
	}
	if img := built.daemonSet.Spec.Template.Spec.Containers[0].Image; img != "ringwatch:latest" {
		t.Errorf("built image is %q, want ringwatch:latest from kustomization.yaml's images", img)
	}
}

// kustomizeBuild builds deploy/kubernetes with kustomize, and decodes what
// it makes.
func kustomizeBuild(t *testing.T) objects {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), manifests)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	var docs [][]byte
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, doc)
	}
	return decodeObjects(t, "kustomize build", docs)
}

// TestDaemonSet checks the DaemonSet against what ringwatch needs and
// offers: its port, its paths, its capabilities and no more.
func TestDaemonSet(t *testing.T) {
	o := kustomizeBuild(t)
	ds := o.daemonSet
	pod := ds.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The kernel reports host pids; ringwatch leaves its own out by pid.
	if !pod.HostPID || pod.HostNetwork || pod.HostIPC {
		t.Errorf("hostPID %v, hostNetwork %v, hostIPC %v: want host pids only", pod.HostPID, pod.HostNetwork, pod.HostIPC)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("ringwatch does not talk to the API server: do not mount a service account token")
	}

	// Flags as --name=value, each one argument, so the tests can read and
	// replace them.
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("args %q: want ringwatch run", c.Args)
	}
	for _, a := range c.Args[1:] {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
			t.Errorf("argument %q: write flags as --name=value", a)
		}
	}

	// The port ringwatch listens on is the one the pod names "metrics".
	listen := flagValue(t, c.Args, "--web.listen-address")
	port, err := strconv.Atoi(listen[strings.LastIndex(listen, ":")+1:])
	if err != nil || !strings.HasPrefix(listen, ":") {
		t.Fatalf("--web.listen-address=%q: want :PORT, every interface of the pod", listen)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || int(c.Ports[0].ContainerPort) != port || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v, want metrics %d/TCP as --web.listen-address says", c.Ports, port)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/metrics" || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe %+v: want GET /metrics on port metrics", name, p)
		}
	}

	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: request %v, limit %v: want both, request at most the limit", r, req.String(), lim.String())
		}
	}

	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the container has no securityContext capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("the container is privileged: it needs only its capabilities")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	if !slices.Equal(slices.Sorted(slices.Values(sc.Capabilities.Add)), wantCapabilities) {
		t.Errorf("capabilities add %v, want %v", sc.Capabilities.Add, wantCapabilities)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true: ringwatch writes only its control socket")
	}
	// A process of another uid loses the added capabilities when the
	// container's command starts (execve keeps only ambient ones, and
	// runtimes set none), so ringwatch runs as uid 0.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("runAsUser must be 0: without ambient capabilities, a non-root uid gets none of those added")
	}

	// Host paths: tracefs and BTF read-only, nothing else from the host.
	// ringwatch pins nothing, so it needs no bpffs.
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	wantHost := map[string]string{"/sys/kernel/tracing": "/sys/kernel/tracing", "/sys/kernel/btf": "/sys/kernel/btf"}
	mounted := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounted[m.MountPath] = m
	}
	for mountPath, hostPath := range wantHost {
		m, ok := mounted[mountPath]
		if !ok || hostPaths[m.Name] != hostPath || !m.ReadOnly {
			t.Errorf("want host %s mounted read-only at %s; mounts %+v, host paths %v", hostPath, mountPath, c.VolumeMounts, hostPaths)
		}
	}
	if len(hostPaths) != len(wantHost) {
		t.Errorf("host paths %v: want only %v", hostPaths, wantHost)
	}
	// The control socket's directory must be writable on a read-only root.
	if m, ok := mounted[filepath.Dir(control.DefaultSocket)]; !ok || m.ReadOnly || hostPaths[m.Name] != "" {
		t.Errorf("want a writable volume of the pod's own at %s for the control socket; mounts %+v", filepath.Dir(control.DefaultSocket), c.VolumeMounts)
	}

	// The Service and ServiceMonitor reach the pod's port.
	if !selects(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("DaemonSet selector %v does not select its pods %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	svc := o.service
	if !selects(svc.Spec.Selector, ds.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort.String() != "metrics" ||
		int(svc.Spec.Ports[0].Port) != port {
		t.Errorf("Service ports %+v: want metrics %d to the pods' metrics port", svc.Spec.Ports, port)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Error("the Service should be headless: each pod is scraped on its own")
	}
	sm := o.serviceMonitor
	if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) || sm.Namespace != svc.Namespace {
		t.Errorf("ServiceMonitor selector %v (namespace %q) does not select the Service %v (namespace %q)",
			sm.Spec.Selector.MatchLabels, sm.Namespace, svc.Labels, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" ||
		sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v: want port metrics, path /metrics", sm.Spec.Endpoints)
	}
	// The alerts' job="ringwatch" is the Service's name under the operator.
	if svc.Name != "ringwatch" {
		t.Errorf("Service %q: the alerts in deploy/prometheus expect job ringwatch", svc.Name)
	}
	// hostPID and host paths need Pod Security's privileged level.
	if got := o.namespace.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace pod-security.kubernetes.io/enforce=%q: the pods would be refused below privileged", got)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// flagValue returns the value of a --name=value argument.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatalf("args %q have no %s=", args, name)
	return ""
}

// withFlag returns args with every --name=value argument replaced by one
// --name=value at the end (a flag may be repeatable: appending alone could
// add an address rather than replace it).
func withFlag(args []string, name, value string) []string {
	out := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, name+"=") })
	return append(out, name+"="+value)
}

// TestDaemonSetCapabilitiesSuffice runs the DaemonSet's own command line
// as its container would run: uid 0 with only the capabilities the
// manifest adds (setpriv limits the bounding set, so they are all root
// gets). It must carry records; without any one of them it must refuse,
// saying which is missing: the manifest asks for enough, and no more.
func TestDaemonSetCapabilitiesSuffice(t *testing.T) {
	testenv.RequireBPF(t)
	testenv.RequireTracefs(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testenv.Unavailable(t, "needs setpriv (util-linux) to drop capabilities")
	}
	bin := ringwatchBinary(t)
	container := kustomizeBuild(t).daemonSet.Spec.Template.Spec.Containers[0]
	args := container.Args
	if container.SecurityContext == nil || container.SecurityContext.Capabilities == nil {
		t.Fatal("the container has no securityContext capabilities")
	}
	caps := container.SecurityContext.Capabilities.Add
	// Listen where nothing else does, keep the socket here, and stop.
	args = withFlag(args, "--web.listen-address", "127.0.0.1:0")
	args = withFlag(args, "--ctl.socket", filepath.Join(tmpDir, "caps.sock"))
	args = withFlag(args, "--duration", "500ms")

	run := func(caps []corev1.Capability) (string, error) {
		bounding := "-all"
		for _, c := range caps {
			bounding += ",+" + strings.ToLower(string(c))
		}
		cmd := exec.Command(setpriv, append([]string{"--bounding-set=" + bounding, "--inh-caps=-all",
			"--ambient-caps=-all", "--", bin}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(caps)
	if err != nil {
		t.Fatalf("with %v: %v\n%s", caps, err, out)
	}
	if !strings.Contains(out, "ringwatch: stopped") {
		t.Errorf("with %v: no summary:\n%s", caps, out)
	}
	for i, c := range caps {
		fewer := slices.Delete(slices.Clone(caps), i, i+1)
		out, err := run(fewer)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(out, "lacks CAP_"+string(c)) {
			t.Errorf("without CAP_%s: %v, want a refusal naming it:\n%s", c, err, out)
		}
	}
}
