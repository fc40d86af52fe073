package deploy

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sesgate/sesgate/internal/config"
	"github.com/sesgate/sesgate/internal/server"
)

// TestChartLint runs `helm lint` over the chart with the default and the
// full values: no error and no warning.
func TestChartLint(t *testing.T) {
	for _, vf := range []string{"", fullValues} {
		res := lint.All(chartDir, readValues(t, vf), namespace, false)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("lint (%q): %s", vf, m)
			}
		}
		if len(res.Messages) > 0 {
			t.Logf("lint (%q): %v", vf, res.Messages)
		}
	}
}

// gateway is the rendered gateway pod and what its args mean to the real
// flag parser.
type gateway struct {
	pod      corev1.PodSpec
	c        corev1.Container
	s        *server.Settings
	ports    map[string]int32
	env      map[string]corev1.EnvVar
	selector map[string]string
}

func gatewayOf(t *testing.T, r *rendered, name string) *gateway {
	t.Helper()
	d := one(t, r.deployments, name)
	g := &gateway{pod: d.Spec.Template.Spec, ports: map[string]int32{}, env: map[string]corev1.EnvVar{}, selector: d.Spec.Selector.MatchLabels}
	if len(g.pod.Containers) != 1 || g.pod.Containers[0].Name != "sesgate" {
		t.Fatalf("want one container sesgate, have %d", len(g.pod.Containers))
	}
	g.c = g.pod.Containers[0]
	if len(g.c.Args) == 0 || g.c.Args[0] != "serve" {
		t.Fatalf("args %v do not run serve", g.c.Args)
	}
	s, err := server.ParseSettings(g.c.Args[1:], os.Stderr)
	if err != nil {
		t.Fatalf("the gateway refuses the rendered args %v: %v", g.c.Args, err)
	}
	g.s = s
	for _, p := range g.c.Ports {
		g.ports[p.Name] = p.ContainerPort
	}
	for _, e := range g.c.Env {
		if _, dup := g.env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		g.env[e.Name] = e
	}
	if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("the Deployment's selector does not select its own pods")
	}
	return g
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// checkPosture asserts what every rendering of the gateway must keep: the
// security posture, the probes, the drain bound, the memory budget under
// the limit, the listeners behind the ports, the admin port out of the
// sending Service, the policy in its ConfigMap, secrets by reference.
func checkPosture(t *testing.T, r *rendered, g *gateway) {
	t.Helper()
	s, pod, c := g.s, g.pod, g.c
	if s.Sink != "ses" {
		t.Errorf("sink %q, want ses", s.Sink)
	}
	// Non-root, read-only, no privilege escalation, no capabilities.
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the pod must run as a non-root user with the RuntimeDefault seccomp profile")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		len(sc.Capabilities.Add) != 0 || (sc.Privileged != nil && *sc.Privileged) {
		t.Error("the container must be read-only, without privilege escalation and without capabilities")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a Kubernetes API token")
	}
	// The data dir is the one writable path, and it is a volume.
	writable := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == s.DataDir && !m.ReadOnly {
			writable = true
		} else if !m.ReadOnly {
			t.Errorf("volume %s at %s is writable", m.Name, m.MountPath)
		}
	}
	if !writable {
		t.Errorf("--data-dir %s is not a writable volume (the root file system is read-only)", s.DataDir)
	}
	// Probes on the sending HTTP listener.
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || rp.HTTPGet.Port != intstr.FromString("http") {
		t.Error("readiness probe must GET /readyz on the http port")
	}
	if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port != intstr.FromString("http") {
		t.Error("liveness probe must GET /healthz on the http port")
	}
	// The grace period covers the drain: readiness delay plus drain bound.
	grace := pod.TerminationGracePeriodSeconds
	if grace == nil || float64(*grace) <= (s.ShutdownDelay+s.ShutdownTimeout).Seconds() {
		t.Errorf("terminationGracePeriodSeconds must exceed --shutdown-delay + --shutdown-timeout (%v)", s.ShutdownDelay+s.ShutdownTimeout)
	}
	if s.ShutdownDelay <= 0 {
		t.Error("--shutdown-delay must be set: endpoints need time to drop a pod that is no longer ready")
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		t.Error("a preStop hook would eat into the grace period the drain bound is checked against")
	}
	// The memory budget stays under the memory limit (with the SES sink the
	// heap peaks near four times the budget: README, --mem-budget).
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatal("no memory limit")
	}
	if 4*s.MemBudget > limit.Value() {
		t.Errorf("--mem-budget %d: four times it exceeds the memory limit %s", s.MemBudget, limit.String())
	}
	// Listeners behind the container ports; the admin port is not in the
	// sending Service.
	if g.ports["smtp"] != portOf(t, s.SMTPAddr) || g.ports["http"] != portOf(t, s.HTTPAddr) || g.ports["admin"] != portOf(t, s.AdminAddr) {
		t.Errorf("container ports %v do not match the listeners %s %s %s", g.ports, s.SMTPAddr, s.HTTPAddr, s.AdminAddr)
	}
	if s.SMTPSAddr != "" && g.ports["smtps"] != portOf(t, s.SMTPSAddr) {
		t.Errorf("smtps port %d does not match %s", g.ports["smtps"], s.SMTPSAddr)
	}
	svc := one(t, r.services, release+"-sesgate")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(g.selector)) {
		t.Error("the Service does not select the gateway pods")
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == "admin" || p.TargetPort.IntValue() == int(g.ports["admin"]) {
			t.Error("the admin listener must not be in the sending Service")
		}
		if _, ok := g.ports[p.TargetPort.String()]; !ok {
			t.Errorf("service port %s targets unknown container port %s", p.Name, p.TargetPort.String())
		}
	}
	// The policy file comes from a ConfigMap the gateway accepts.
	policyFound := false
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := r.configMaps[v.ConfigMap.Name]
		if !ok {
			continue // an existing ConfigMap, checked by the caller
		}
		text, ok := cm.Data["policy.yml"]
		if !ok || !strings.HasSuffix(s.ConfigPath, "/policy.yml") {
			t.Errorf("ConfigMap %s lacks policy.yml, or --config %s names another file", cm.Name, s.ConfigPath)
		}
		if _, err := config.Parse([]byte(text)); err != nil {
			t.Errorf("policy in ConfigMap %s: %v", cm.Name, err)
		}
		policyFound = true
	}
	if !policyFound && !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil }) {
		t.Error("no ConfigMap volume provides the policy file")
	}
	// TLS files come from a Secret volume.
	if s.TLSCert != "" {
		var tls *corev1.Volume
		for i, v := range pod.Volumes {
			if v.Secret != nil && slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == v.Name && strings.HasPrefix(s.TLSCert, m.MountPath+"/") && strings.HasPrefix(s.TLSKey, m.MountPath+"/")
			}) {
				tls = &pod.Volumes[i]
			}
		}
		if tls == nil {
			t.Errorf("--tls-cert %s / --tls-key %s are not on a Secret volume", s.TLSCert, s.TLSKey)
		}
	}
	// Static AWS credentials never: IRSA or pod identity.
	for n, e := range g.env {
		if strings.HasPrefix(n, "AWS_SECRET") || strings.HasPrefix(n, "AWS_ACCESS_KEY") || strings.HasPrefix(n, "AWS_SESSION") {
			t.Errorf("static AWS credentials in the pod (%s): use IRSA or pod identity", n)
		}
		// Secrets only by reference.
		if (strings.Contains(n, "PASSWORD") || strings.Contains(n, "KEY") || strings.Contains(n, "WEBHOOK") || strings.Contains(n, "TOKEN")) &&
			(e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s is a secret but not a secretKeyRef", n)
		}
	}
	// Several replicas share state through Redis, with the same recipient key.
	if url := g.env["SESGATE_REDIS_URL"].Value; url == "" {
		t.Error("the gateway has no SESGATE_REDIS_URL")
	}
	if k := g.env["SESGATE_RECIPIENT_KEY"].ValueFrom; k == nil || k.SecretKeyRef == nil || (k.SecretKeyRef.Optional != nil && *k.SecretKeyRef.Optional) {
		t.Error("with Redis, SESGATE_RECIPIENT_KEY must come from a Secret, not optional (the gateway refuses to start without it)")
	}
	// The service account exists (or is named) and has no API token.
	if sa, ok := r.accounts[pod.ServiceAccountName]; ok && (sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken) {
		t.Error("the ServiceAccount must not automount a token")
	}
}

// TestChartDefaults renders the default values: the one-command install.
func TestChartDefaults(t *testing.T) {
	r := render(t, "")
	if got, want := r.count(), "Deployment=1 StatefulSet=1 Service=2 ConfigMap=1 Secret=2 ServiceAccount=1 PDB=1 NetworkPolicy=0 ServiceMonitor=0 PrometheusRule=0"; got != want {
		t.Fatalf("objects: %s, want %s", got, want)
	}
	name := release + "-sesgate"
	g := gatewayOf(t, r, name)
	checkPosture(t, r, g)
	if g.s.TLSCert == "" {
		t.Error("TLS must be on by default (STARTTLS on SMTP)")
	}
	if *one(t, r.deployments, name).Spec.Replicas < 2 {
		t.Error("the central service runs several replicas by default")
	}
	if pdb := one(t, r.pdbs, name); pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 ||
		!labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(g.selector)) {
		t.Error("the PodDisruptionBudget must select the gateway pods with maxUnavailable 1")
	}
	if _, ok := r.accounts[g.pod.ServiceAccountName]; !ok {
		t.Errorf("service account %q not rendered", g.pod.ServiceAccountName)
	}

	// The bundled Redis: persistent, passworded with the gateway's secret,
	// hardened, selected apart from the gateway.
	redis := one(t, r.statefulSets, name+"-redis")
	rsvc := one(t, r.services, name+"-redis")
	if want := "redis://" + rsvc.Name + ":6379/0"; g.env["SESGATE_REDIS_URL"].Value != want || rsvc.Spec.Ports[0].Port != 6379 {
		t.Errorf("SESGATE_REDIS_URL %q, want %q", g.env["SESGATE_REDIS_URL"].Value, want)
	}
	rpod := redis.Spec.Template.Spec
	rsel := labels.SelectorFromSet(rsvc.Spec.Selector)
	if !rsel.Matches(labels.Set(redis.Spec.Template.Labels)) || rsel.Matches(labels.Set(g.selector)) ||
		labels.SelectorFromSet(one(t, r.services, name).Spec.Selector).Matches(labels.Set(redis.Spec.Template.Labels)) {
		t.Error("the Redis Service must select the Redis pod only, and the gateway Service must not select it")
	}
	args := strings.Join(rpod.Containers[0].Args, " ")
	if !strings.Contains(args, "--appendonly yes") || !strings.Contains(args, "--requirepass $(REDIS_PASSWORD)") || len(redis.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("Redis must persist (AOF on a volume claim) and require the password: %s", args)
	}
	rsc := rpod.Containers[0].SecurityContext
	if rpod.SecurityContext == nil || rpod.SecurityContext.RunAsNonRoot == nil || !*rpod.SecurityContext.RunAsNonRoot ||
		rsc == nil || !*rsc.ReadOnlyRootFilesystem || *rsc.AllowPrivilegeEscalation || !slices.Contains(rsc.Capabilities.Drop, "ALL") {
		t.Error("Redis must run hardened too")
	}
	// The generated Secret holds both keys the pods reference; the Redis
	// password is the same reference on both sides.
	secret := one(t, r.secrets, name+"-secrets")
	gw, rp := g.env["SESGATE_REDIS_PASSWORD"].ValueFrom.SecretKeyRef, rpod.Containers[0].Env[0].ValueFrom.SecretKeyRef
	if gw.Name != secret.Name || rp.Name != secret.Name || gw.Key != rp.Key || len(secret.Data[gw.Key]) < 16 {
		t.Errorf("Redis password: gateway %s/%s, redis %s/%s", gw.Name, gw.Key, rp.Name, rp.Key)
	}
	rk := g.env["SESGATE_RECIPIENT_KEY"].ValueFrom.SecretKeyRef
	if rk.Name != secret.Name || len(secret.Data[rk.Key]) < 16 {
		t.Errorf("recipient key %s/%s: missing or shorter than 16 bytes", rk.Name, rk.Key)
	}
	if secret.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Error("the generated Secret must survive an uninstall (the recipient key names Redis's first-contact memory)")
	}
	// The generated certificate is for the Service's names.
	tlsSecret := one(t, r.secrets, name+"-tls")
	block, _ := pem.Decode(tlsSecret.Data["tls.crt"])
	if block == nil || tlsSecret.Type != corev1.SecretTypeTLS {
		t.Fatal("the TLS Secret holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname(name + "." + namespace + ".svc"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(r.notes, name+"."+namespace+".svc:587") {
		t.Errorf("NOTES do not say where to send:\n%s", r.notes)
	}
}

// TestChartFullValues renders every option on: external Redis, existing
// secrets, IRSA, SMTPS, ServiceMonitor, PrometheusRule, the dashboard,
// NetworkPolicies.
func TestChartFullValues(t *testing.T) {
	r := render(t, fullValues)
	if got, want := r.count(), "Deployment=1 StatefulSet=0 Service=2 ConfigMap=2 Secret=0 ServiceAccount=1 PDB=1 NetworkPolicy=1 ServiceMonitor=1 PrometheusRule=1"; got != want {
		t.Fatalf("objects: %s, want %s", got, want)
	}
	vals := readValues(t, fullValues)
	name := release + "-sesgate"
	g := gatewayOf(t, r, name)
	checkPosture(t, r, g)
	if g.s.SMTPSAddr == "" || g.s.LogLevel != "debug" || g.s.SMTPMaxConnsPerSource != 200 {
		t.Errorf("full values: smtps %q, log level %q, max conns per source %d", g.s.SMTPSAddr, g.s.LogLevel, g.s.SMTPMaxConnsPerSource)
	}
	redis := vals["redis"].(map[string]any)
	if g.env["SESGATE_REDIS_URL"].Value != redis["url"] {
		t.Errorf("SESGATE_REDIS_URL %q, want the external %q", g.env["SESGATE_REDIS_URL"].Value, redis["url"])
	}
	existing := vals["secrets"].(map[string]any)["existingSecret"].(string)
	for _, n := range []string{"SESGATE_REDIS_PASSWORD", "SESGATE_RECIPIENT_KEY", "SESGATE_ALERT_WEBHOOK"} {
		if ref := g.env[n].ValueFrom.SecretKeyRef; ref.Name != existing {
			t.Errorf("%s from %s, want the existing Secret %s", n, ref.Name, existing)
		}
	}
	sa := one(t, r.accounts, g.pod.ServiceAccountName)
	roleArn := vals["serviceAccount"].(map[string]any)["roleArn"]
	if sa.Annotations["eks.amazonaws.com/role-arn"] != roleArn {
		t.Errorf("IRSA annotation %q, want %q", sa.Annotations["eks.amazonaws.com/role-arn"], roleArn)
	}
	grace := vals["terminationGracePeriodSeconds"].(float64)
	if float64(*g.pod.TerminationGracePeriodSeconds) != grace {
		t.Errorf("grace %d, want the value %v", *g.pod.TerminationGracePeriodSeconds, grace)
	}

	// ServiceMonitor -> admin Service -> admin container port, with the
	// admin token by reference and job="sesgate" for the rules.
	sm := one(t, r.serviceMonitors, name)
	admin := one(t, r.services, name+"-admin")
	if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(admin.Labels)) ||
		labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(one(t, r.services, name).Labels)) {
		t.Error("the ServiceMonitor must select the admin Service and only it")
	}
	if !labels.SelectorFromSet(admin.Spec.Selector).Matches(labels.Set(g.selector)) || admin.Spec.ClusterIP != corev1.ClusterIPNone ||
		len(admin.Spec.Ports) != 1 || admin.Spec.Ports[0].Name != "admin" || admin.Spec.Ports[0].TargetPort.String() != "admin" {
		t.Error("the admin Service must be headless, select the gateway pods and expose only the admin port")
	}
	ep := sm.Spec.Endpoints[0]
	tok := vals["metrics"].(map[string]any)["serviceMonitor"].(map[string]any)["adminTokenSecret"].(map[string]any)
	if ep.Port != "admin" || ep.Path != "/metrics" || ep.Authorization == nil || ep.Authorization.Credentials == nil ||
		ep.Authorization.Credentials.Name != tok["name"] || ep.Authorization.Credentials.Key != tok["key"] {
		t.Errorf("ServiceMonitor endpoint: %+v", ep)
	}
	if len(ep.RelabelConfigs) != 1 || ep.RelabelConfigs[0].TargetLabel != "job" || ep.RelabelConfigs[0].Replacement == nil || *ep.RelabelConfigs[0].Replacement != "sesgate" {
		t.Error(`the ServiceMonitor must set job="sesgate", which the rules and the dashboard select`)
	}

	// The PrometheusRule holds the groups of deploy/monitoring/rules.yaml.
	pr := one(t, r.rules, name)
	file := parseRules(t, "monitoring/rules.yaml")
	if len(pr.Spec.Groups) != len(file.Groups) {
		t.Fatalf("PrometheusRule has %d groups, rules.yaml %d", len(pr.Spec.Groups), len(file.Groups))
	}
	for i, grp := range pr.Spec.Groups {
		fg := file.Groups[i]
		if grp.Name != fg.Name || len(grp.Rules) != len(fg.Rules) {
			t.Fatalf("group %d: %s with %d rules, rules.yaml %s with %d", i, grp.Name, len(grp.Rules), fg.Name, len(fg.Rules))
		}
		for j, rl := range grp.Rules {
			fr := fg.Rules[j]
			if rl.Alert != fr.Alert || rl.Expr.String() != fr.Expr || rl.Annotations["summary"] != fr.Annotations["summary"] ||
				rl.Labels["severity"] != fr.Labels["severity"] {
				t.Errorf("rule %s differs from rules.yaml's %s", rl.Alert, fr.Alert)
			}
		}
	}
	if pr.Labels["release"] != "kube-prometheus-stack" {
		t.Error("prometheusRule.labels are not applied")
	}

	// The dashboard ConfigMap, for Grafana's sidecar.
	dash := one(t, r.configMaps, name+"-dashboard")
	want, err := os.ReadFile("monitoring/sesgate-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if dash.Labels["grafana_dashboard"] != "1" || strings.TrimSpace(dash.Data["sesgate.json"]) != strings.TrimSpace(string(want)) {
		t.Error("the dashboard ConfigMap must carry the grafana_dashboard label and deploy/monitoring/sesgate-dashboard.json")
	}
	if dash.Namespace != "monitoring" {
		t.Errorf("dashboard namespace %q", dash.Namespace)
	}

	// NetworkPolicy: the sending ports from the given peers, the admin port
	// from the monitoring namespace; every port named exists on the pod.
	np := one(t, r.netpols, name)
	if !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(g.selector)) || len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy must select the gateway with two ingress rules: %+v", np.Spec)
	}
	for _, in := range np.Spec.Ingress {
		if len(in.From) == 0 {
			t.Error("full values give peers for every rule")
		}
		for _, p := range in.Ports {
			if _, ok := g.ports[p.Port.String()]; !ok {
				t.Errorf("NetworkPolicy names port %s the container does not have", p.Port.String())
			}
		}
	}
}

// TestChartRefuses: value combinations that would deploy a broken or unsafe
// gateway fail the render with a message that says what to do.
func TestChartRefuses(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"several replicas without Redis", "redis: {enabled: false}", "replicaCount > 1 needs Redis"},
		{"both Redis", "redis: {url: 'redis://r:6379'}", "set redis.enabled=false"},
		{"grace within the drain", "terminationGracePeriodSeconds: 25", "must exceed gateway.shutdownDelaySeconds + gateway.shutdownTimeoutSeconds (25)"},
		{"a misspelt value", "gatway: {memBudget: 1GiB}", "additional properties 'gatway' not allowed"},
		{"a misspelt nested value", "gateway: {memBuget: 1GiB}", "additional properties 'memBuget' not allowed"},
		{"a bad Redis URL", "redis: {enabled: false, url: 'localhost:6379'}", "redis"},
		{"scraping without a token", "metrics: {serviceMonitor: {enabled: true}}", "metrics.serviceMonitor.adminTokenSecret.name"},
		{"SMTPS without TLS", "tls: {enabled: false}\ngateway: {smtpsPort: 4650, insecureAuth: true}", "gateway.smtpsPort needs tls.enabled"},
		{"an existing service account without a name", "serviceAccount: {create: false}", "serviceAccount.name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := template("", c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	// The single-replica embedded store is allowed, and then the recipient
	// key is optional (the embedded store makes its own).
	r := render(t, "", "replicaCount: 1\nredis: {enabled: false}")
	g := gatewayOf(t, r, release+"-sesgate")
	if _, ok := g.env["SESGATE_REDIS_URL"]; ok || len(r.statefulSets) != 0 {
		t.Error("without Redis the gateway must use the embedded store")
	}
	if ref := g.env["SESGATE_RECIPIENT_KEY"].ValueFrom.SecretKeyRef; ref.Optional == nil || !*ref.Optional {
		t.Error("without Redis the recipient key is optional")
	}
}

// TestChartShipsMonitoringFiles: the chart's copies of the rules and the
// dashboard are deploy/monitoring's (Helm reads files only inside a chart).
func TestChartShipsMonitoringFiles(t *testing.T) {
	for _, f := range []string{"rules.yaml", "sesgate-dashboard.json"} {
		a, err := os.ReadFile("monitoring/" + f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(chartDir + "/files/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("%s/files/%s differs from monitoring/%s: cp deploy/monitoring/%s deploy/helm/sesgate/files/", chartDir, f, f, f)
		}
	}
}

// TestChartValuesDocumented: every value of values.yaml (down to the
// schema's free-form maps) has a row in the chart's README, every row names
// a value, and the schema knows every value (so a misspelt key is refused).
func TestChartValuesDocumented(t *testing.T) {
	readme, err := os.ReadFile(chartDir + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	b, err := os.ReadFile(chartDir + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	var paths []string
	var walk func(prefix string, vals map[string]any, sch map[string]any)
	walk = func(prefix string, vals map[string]any, sch map[string]any) {
		props, _ := sch["properties"].(map[string]any)
		for k, v := range vals {
			p := prefix + k
			ks, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("value %s is not in values.schema.json", p)
				continue
			}
			sub, isMap := v.(map[string]any)
			if _, structured := ks["properties"]; isMap && structured {
				if ks["additionalProperties"] != false {
					t.Errorf("schema of %s must refuse unknown keys", p)
				}
				walk(p+".", sub, ks)
				continue
			}
			paths = append(paths, p)
		}
	}
	walk("", readValues(t, chartDir+"/values.yaml"), schema)
	if schema["additionalProperties"] != false {
		t.Error("the schema must refuse unknown top-level values")
	}
	for _, p := range paths {
		if !documented[p] {
			t.Errorf("value %s has no row in %s/README.md", p, chartDir)
		}
		delete(documented, p)
	}
	for p := range documented {
		t.Errorf("README documents %s, which values.yaml does not have", p)
	}
	if len(paths) < 50 {
		t.Errorf("only %d values found", len(paths))
	}
}
