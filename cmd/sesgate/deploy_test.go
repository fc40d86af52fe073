package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/server"
)

// manifests decodes every document of a file strictly into its Kubernetes
// API type: an unknown or misspelt field fails the test.
type manifests struct {
	deployments  []*appsv1.Deployment
	statefulsets []*appsv1.StatefulSet
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	accounts     map[string]*corev1.ServiceAccount
	pdbs         []*policyv1.PodDisruptionBudget
}

func loadManifests(t *testing.T, path string) *manifests {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, accounts: map[string]*corev1.ServiceAccount{}}
	for i, doc := range strings.Split(string(b), "\n---\n") {
		var head struct{ Kind, APIVersion string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s doc %d: %v", path, i, err)
		}
		strict := func(v any) {
			if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
				t.Fatalf("%s doc %d (%s): %v", path, i, head.Kind, err)
			}
		}
		switch head.APIVersion + "/" + head.Kind {
		case "apps/v1/Deployment":
			var d appsv1.Deployment
			strict(&d)
			m.deployments = append(m.deployments, &d)
		case "apps/v1/StatefulSet":
			var s appsv1.StatefulSet
			strict(&s)
			m.statefulsets = append(m.statefulsets, &s)
		case "v1/Service":
			var s corev1.Service
			strict(&s)
			m.services = append(m.services, &s)
		case "v1/ConfigMap":
			var c corev1.ConfigMap
			strict(&c)
			m.configMaps[c.Name] = &c
		case "v1/Secret":
			var s corev1.Secret
			strict(&s)
			m.secrets[s.Name] = &s
		case "v1/ServiceAccount":
			var s corev1.ServiceAccount
			strict(&s)
			m.accounts[s.Name] = &s
		case "policy/v1/PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			strict(&p)
			m.pdbs = append(m.pdbs, &p)
		default:
			t.Fatalf("%s doc %d: unexpected %s %s", path, i, head.APIVersion, head.Kind)
		}
	}
	return m
}

// sesgateSettings parses a container's args as `sesgate serve` would.
func sesgateSettings(t *testing.T, c corev1.Container) *server.Settings {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container %s: args %v do not run serve", c.Name, c.Args)
	}
	s, err := server.ParseSettings(c.Args[1:], os.Stderr)
	if err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	return s
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

func checkHardened(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	nonRoot := (pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot) ||
		(c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil && *c.SecurityContext.RunAsNonRoot)
	sc := c.SecurityContext
	if !nonRoot || sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container %s is not non-root, read-only, without privilege escalation and capabilities", c.Name)
	}
}

func policyOf(t *testing.T, m *manifests, pod corev1.PodSpec, s *server.Settings) {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := m.configMaps[v.ConfigMap.Name]
		if !ok {
			t.Fatalf("volume %s references missing ConfigMap %s", v.Name, v.ConfigMap.Name)
		}
		if text, ok := cm.Data[filepath.Base(s.ConfigPath)]; ok {
			if _, err := config.Parse([]byte(text)); err != nil {
				t.Fatalf("policy in ConfigMap %s: %v", cm.Name, err)
			}
			return
		}
	}
	t.Fatalf("no ConfigMap provides %s", s.ConfigPath)
}

func TestCentralManifest(t *testing.T) {
	m := loadManifests(t, "../../deploy/kubernetes/central/sesgate.yaml")
	if len(m.deployments) != 1 || len(m.services) != 1 || len(m.pdbs) != 1 {
		t.Fatalf("want one Deployment, Service, PodDisruptionBudget")
	}
	d := m.deployments[0]
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	s := sesgateSettings(t, c)
	if s.Sink != "ses" || s.TLSCert == "" {
		t.Error("central service must send through SES and offer TLS on public listeners")
	}
	policyOf(t, m, pod, s)
	checkHardened(t, pod, c)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["admin"] != port(t, s.AdminAddr) {
		t.Errorf("admin container port %d does not match --admin-addr %s", ports["admin"], s.AdminAddr)
	}
	for _, p := range m.services[0].Spec.Ports {
		if p.TargetPort.String() == "admin" {
			t.Error("the admin listener must not be in the Service")
		}
	}
	if ports["http"] != port(t, s.HTTPAddr) || ports["smtp"] != port(t, s.SMTPAddr) || ports["http"] != 8025 || ports["smtp"] != 2525 {
		t.Errorf("container ports %v do not match the listeners %s, %s and the defaults", ports, s.HTTPAddr, s.SMTPAddr)
	}
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port.String() != "http" {
		t.Error("readiness probe must GET /readyz on the http port")
	}
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "http" {
		t.Error("liveness probe must GET /healthz on the http port")
	}
	grace := pod.TerminationGracePeriodSeconds
	if grace == nil || float64(*grace) <= (s.ShutdownTimeout+s.ShutdownDelay).Seconds() {
		t.Errorf("terminationGracePeriodSeconds must exceed shutdown delay + timeout (%v)", s.ShutdownTimeout+s.ShutdownDelay)
	}
	svc := m.services[0]
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("service port %s targets unknown container port %s", p.Name, p.TargetPort.String())
		}
	}
	if svc.Spec.Selector["app.kubernetes.io/name"] != d.Spec.Template.Labels["app.kubernetes.io/name"] ||
		m.pdbs[0].Spec.Selector.MatchLabels["app.kubernetes.io/name"] != d.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Error("Service or PodDisruptionBudget does not select the sesgate pods")
	}
	if _, ok := m.accounts[pod.ServiceAccountName]; !ok {
		t.Errorf("service account %q not defined", pod.ServiceAccountName)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "AWS_SECRET") || strings.HasPrefix(e.Name, "AWS_ACCESS_KEY") {
			t.Errorf("static AWS credentials in the manifest (%s): use IRSA or pod identity", e.Name)
		}
		env[e.Name] = e
	}
	// With Redis the gateway refuses to start without a recipient key, the
	// same on every replica: from a Secret of the manifest.
	if env["SESGATE_REDIS_URL"].Value != "" {
		ref := env["SESGATE_RECIPIENT_KEY"].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			t.Fatal("SESGATE_REDIS_URL without SESGATE_RECIPIENT_KEY from a Secret: the gateway would not start")
		}
		sec, ok := m.secrets[ref.SecretKeyRef.Name]
		if !ok || len(sec.StringData[ref.SecretKeyRef.Key]) < 16 {
			t.Errorf("Secret %s has no %s of at least 16 bytes", ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
		}
	}
}

func TestSidecarManifest(t *testing.T) {
	m := loadManifests(t, "../../deploy/kubernetes/sidecar/app-with-sesgate.yaml")
	if len(m.deployments) != 1 {
		t.Fatal("want one Deployment")
	}
	d := m.deployments[0]
	pod := d.Spec.Template.Spec
	var gw, app *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == "sesgate" {
			gw = &pod.InitContainers[i]
		}
	}
	for i := range pod.Containers {
		if pod.Containers[i].Name == "app" {
			app = &pod.Containers[i]
		}
	}
	if gw == nil || app == nil {
		t.Fatal("want an init (native sidecar) container sesgate and a container app")
	}
	if gw.RestartPolicy == nil || *gw.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("sesgate must be a native sidecar (restartPolicy Always)")
	}
	s := sesgateSettings(t, *gw)
	policyOf(t, m, pod, s)
	checkHardened(t, pod, *gw)
	// Loopback only: the defaults, reachable from the app, not from outside.
	for _, a := range []string{s.SMTPAddr, s.HTTPAddr} {
		host, _, _ := net.SplitHostPort(a)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("sidecar listener %s is not on loopback", a)
		}
	}
	if len(gw.Ports) != 0 {
		t.Error("sidecar must not declare container ports")
	}
	for _, p := range []*corev1.Probe{gw.ReadinessProbe, gw.LivenessProbe, gw.StartupProbe} {
		if p == nil || p.Exec == nil || len(p.Exec.Command) < 2 || p.Exec.Command[1] != "probe" {
			t.Fatal("sidecar probes must exec `sesgate probe` (loopback is out of the kubelet's reach)")
		}
	}
	// The app container cannot read the SES credentials.
	if d.Spec.Template.Annotations["eks.amazonaws.com/skip-containers"] != app.Name {
		t.Error("IRSA token must be kept out of the app container (eks.amazonaws.com/skip-containers)")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token")
	}
	for _, e := range app.Env {
		if strings.HasPrefix(e.Name, "AWS_") {
			t.Errorf("app container gets %s", e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "app-sesgate-token" {
			t.Errorf("app container reads secret %s", e.ValueFrom.SecretKeyRef.Name)
		}
	}
	if len(app.VolumeMounts) != 0 || len(app.EnvFrom) != 0 {
		t.Error("app container must not mount volumes or whole secrets")
	}
	var target string
	for _, e := range app.Env {
		if e.Name == "SMTP_PORT" {
			target = e.Value
		}
	}
	if target != strconv.Itoa(int(port(t, s.SMTPAddr))) {
		t.Errorf("app sends to port %s, sesgate listens on %s", target, s.SMTPAddr)
	}
	grace := pod.TerminationGracePeriodSeconds
	if grace == nil || float64(*grace) <= (s.ShutdownTimeout+s.ShutdownDelay).Seconds() {
		t.Error("terminationGracePeriodSeconds must exceed the drain bound")
	}
}

func TestRedisManifest(t *testing.T) {
	m := loadManifests(t, "../../deploy/kubernetes/redis/redis.yaml")
	if len(m.statefulsets) != 1 || len(m.services) != 1 {
		t.Fatal("want one StatefulSet and one Service")
	}
	args := strings.Join(m.statefulsets[0].Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--appendonly yes") {
		t.Error("Redis must persist (AOF) so quotas and trips survive a restart")
	}
}
