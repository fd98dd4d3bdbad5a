package check

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// root is the repository, seen from this package's folder.
const root = "../.."

// stateful are the components that keep a bbolt file, with their gRPC ports
// (the contract of `rapport serve`).
var stateful = []struct {
	name string
	port int
}{
	{"profile", 7101},
	{"segmentation", 7102},
	{"loyalty", 7103},
	{"care", 7104},
	{"access", 7105},
}

const (
	gatewayName = "gateway"
	httpPort    = 8080
	metricsPort = 9090
	// secretFile is the file name of the shared service secret, the key of
	// the Kubernetes Secret deploy/README.md tells how to create.
	secretFile = "service.secret"
)

// addrEnv is the RAPPORT_ variable of a component's --X-addr flag.
func addrEnv(name string) string { return "RAPPORT_" + strings.ToUpper(name) + "_ADDR" }

// tool runs a deployment tool and returns its standard output; the test
// fails, not skips, without the tool: `make deploy-check` installs it.
func tool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not on PATH: run `make deploy-check` (it installs kustomize; .ci/run installs docker-compose)", name)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// --- Dockerfile ---

type dockerfile struct {
	stages []instructions.Stage
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("deploy/Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("deploy/Dockerfile: %s", w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("deploy/Dockerfile: %v", err)
	}
	return dockerfile{stages}
}

func (d dockerfile) final() instructions.Stage { return d.stages[len(d.stages)-1] }

// entrypoint is the final image's ENTRYPOINT.
func (d dockerfile) entrypoint() []string {
	var ep []string
	for _, c := range d.final().Commands {
		if e, ok := c.(*instructions.EntrypointCommand); ok {
			ep = e.CmdLine
		}
	}
	return ep
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(d.stages))
	}
	names := map[string]bool{}
	for _, s := range d.stages[:len(d.stages)-1] {
		names[strings.ToLower(s.Name)] = true
	}

	// The build: a static binary from the workspace.
	var build strings.Builder
	for _, s := range d.stages[:len(d.stages)-1] {
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.RunCommand:
				build.WriteString(strings.Join(c.CmdLine, " ") + "\n")
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					build.WriteString(kv.Key + "=" + kv.Value + "\n")
				}
			}
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", "./cmd/rapport"} {
		if !strings.Contains(build.String(), want) {
			t.Errorf("the build stage does not have %q", want)
		}
	}

	// The image: minimal, non-root, /data a volume, every port exposed.
	final := d.final()
	if base := final.BaseName; base != "scratch" && !strings.Contains(base, "distroless") {
		t.Errorf("final image FROM %s: want scratch or distroless", base)
	}
	var user string
	var volumes, exposed []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.VolumeCommand:
			volumes = append(volumes, c.Volumes...)
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			if c.From != "" && !names[strings.ToLower(c.From)] {
				t.Errorf("COPY --from=%s: no such stage", c.From)
			}
		case *instructions.RunCommand:
			t.Errorf("RUN in the final image (%s): it has no shell", strings.Join(c.CmdLine, " "))
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if !slices.Contains(volumes, "/data") {
		t.Errorf("VOLUME %v: want /data", volumes)
	}
	for _, c := range stateful {
		if !slices.Contains(exposed, fmt.Sprint(c.port)) {
			t.Errorf("EXPOSE %v: %s's port %d is missing", exposed, c.name, c.port)
		}
	}
	for _, p := range []int{httpPort, metricsPort} {
		if !slices.Contains(exposed, fmt.Sprint(p)) {
			t.Errorf("EXPOSE %v: port %d is missing", exposed, p)
		}
	}
	if ep := d.entrypoint(); len(ep) != 1 || path.Base(ep[0]) != "rapport" {
		t.Errorf("ENTRYPOINT %q: want the rapport binary alone", ep)
	}
}

// --- docker-compose.yml ---

type composeFile struct {
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       *composeBuild     `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

// mount is one entry of a service's volumes, in `docker-compose config`'s
// short form SOURCE:TARGET[:MODE].
type mount struct{ source, target, mode string }

func (s composeService) mounts() []mount {
	var ms []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0]}
		if len(parts) > 1 {
			m.target = parts[1]
		}
		if len(parts) > 2 {
			m.mode = parts[2]
		}
		ms = append(ms, m)
	}
	return ms
}

func (s composeService) mountAt(target string) (mount, bool) {
	for _, m := range s.mounts() {
		if m.target == target {
			return m, true
		}
	}
	return mount{}, false
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	out := tool(t, "docker-compose", "--file", filepath.Join(root, "docker-compose.yml"), "config")
	// docker-compose has validated the file against its schema; this reads
	// the fields the test needs.
	var f composeFile
	if err := yaml.Unmarshal(out, &f); err != nil {
		t.Fatalf("docker-compose config output: %v", err)
	}
	return f
}

func TestCompose(t *testing.T) {
	f := loadCompose(t)
	ep := parseDockerfile(t).entrypoint()
	components := []string{gatewayName}
	for _, c := range stateful {
		components = append(components, c.name)
	}

	// One image for every component, built from deploy/Dockerfile.
	image := f.Services[gatewayName].Image
	if image == "" {
		t.Fatal("the gateway service has no image")
	}
	built := false
	for _, name := range components {
		s, ok := f.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if s.Image != image {
			t.Errorf("%s runs image %q, the gateway %q: want one image", name, s.Image, image)
		}
		if s.Build != nil {
			built = true
			if s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("%s builds %q: want deploy/Dockerfile", name, s.Build.Dockerfile)
			}
		}
	}
	if !built {
		t.Error("no component builds the image from deploy/Dockerfile")
	}

	// The shared service secret: a volume every component mounts read-only,
	// written by a one-shot service they all wait for.
	secretPath := f.Services[gatewayName].Environment["RAPPORT_SERVICE_SECRET_FILE"]
	secretDir := path.Dir(secretPath)
	if path.Base(secretPath) != secretFile {
		t.Errorf("RAPPORT_SERVICE_SECRET_FILE=%q: want a file named %s", secretPath, secretFile)
	}
	secretVolume := ""
	if m, ok := f.Services[gatewayName].mountAt(secretDir); ok {
		secretVolume = m.source
	} else {
		t.Errorf("the gateway does not mount %s", secretDir)
	}
	var secretInit string
	for name, s := range f.Services {
		if slices.Contains(components, name) {
			continue
		}
		for _, m := range s.mounts() {
			if m.source == secretVolume && m.mode != "ro" {
				secretInit = name
				if !strings.Contains(strings.Join(s.Command, " "), m.target+"/"+secretFile) {
					t.Errorf("%s mounts the secret volume at %s but does not write %s/%s", name, m.target, m.target, secretFile)
				}
			}
		}
	}
	if secretInit == "" {
		t.Errorf("no one-shot service writes the %s volume", secretVolume)
	}

	volumeOwner := map[string]string{}
	for _, name := range components {
		s := f.Services[name]
		env := s.Environment
		cmd := strings.Join(s.Command, " ")
		if !strings.HasPrefix(cmd, "serve ") || !strings.Contains(cmd, "--target="+name) {
			t.Errorf("%s: command %q: want serve --target=%s", name, cmd, name)
		}
		// Every component dials the others by service name.
		for _, c := range stateful {
			if got, want := env[addrEnv(c.name)], fmt.Sprintf("%s:%d", c.name, c.port); got != want {
				t.Errorf("%s: %s=%q, want %q", name, addrEnv(c.name), got, want)
			}
		}
		for k, want := range map[string]string{
			"RAPPORT_DATA_DIR":            "/data",
			"RAPPORT_LOG_FORMAT":          "json",
			"RAPPORT_METRICS_ADDR":        fmt.Sprintf("0.0.0.0:%d", metricsPort),
			"RAPPORT_SERVICE_SECRET_FILE": secretPath,
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4317",
		} {
			if env[k] != want {
				t.Errorf("%s: %s=%q, want %q", name, k, env[k], want)
			}
		}
		if m, ok := s.mountAt(secretDir); !ok || m.source != secretVolume || m.mode != "ro" {
			t.Errorf("%s: want the %s volume read-only at %s, got %+v", name, secretVolume, secretDir, m)
		}
		if d, ok := s.DependsOn[secretInit]; !ok || d.Condition != "service_completed_successfully" {
			t.Errorf("%s: want depends_on %s: service_completed_successfully, got %+v", name, secretInit, d)
		}
		for dep, d := range s.DependsOn {
			if slices.Contains(components, dep) && d.Condition != "service_healthy" {
				t.Errorf("%s: depends_on %s: %s, want service_healthy", name, dep, d.Condition)
			}
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < len(ep)+2 || s.Healthcheck.Test[0] != "CMD" ||
			!slices.Equal(s.Healthcheck.Test[1:len(ep)+1], ep) || s.Healthcheck.Test[len(ep)+1] != "health" {
			t.Errorf("%s: healthcheck %+v: want [CMD %s health ...] (the image has no shell)", name, s.Healthcheck, strings.Join(ep, " "))
			continue
		}
		data, hasData := s.mountAt("/data")
		if name == gatewayName {
			if want := fmt.Sprintf("--http-addr=0.0.0.0:%d", httpPort); !strings.Contains(cmd, want) {
				t.Errorf("gateway: command %q: want %s", cmd, want)
			}
			if hc := strings.Join(s.Healthcheck.Test, " "); !strings.HasSuffix(hc, fmt.Sprintf("health --http http://127.0.0.1:%d/readyz", httpPort)) {
				t.Errorf("gateway: healthcheck %q: want /readyz", hc)
			}
			for _, c := range stateful {
				if s.DependsOn[c.name].Condition != "service_healthy" {
					t.Errorf("gateway: want depends_on %s: service_healthy", c.name)
				}
			}
			if hasData {
				if _, named := f.Volumes[data.source]; named {
					t.Errorf("gateway: the stateless gateway has a named volume %s", data.source)
				}
			}
			continue
		}
		port := 0
		for _, c := range stateful {
			if c.name == name {
				port = c.port
			}
		}
		if want := fmt.Sprintf("--%s-addr=0.0.0.0:%d", name, port); !strings.Contains(cmd, want) {
			t.Errorf("%s: command %q: want %s (listen on every interface)", name, cmd, want)
		}
		if hc := strings.Join(s.Healthcheck.Test, " "); !strings.HasSuffix(hc, fmt.Sprintf("health --grpc 127.0.0.1:%d", port)) {
			t.Errorf("%s: healthcheck %q: want health --grpc 127.0.0.1:%d", name, hc, port)
		}
		if _, named := f.Volumes[data.source]; !hasData || !named || data.mode == "ro" {
			t.Errorf("%s: want a named volume mounted read-write at /data, got %+v", name, data)
			continue
		}
		if other, taken := volumeOwner[data.source]; taken {
			t.Errorf("%s and %s share the volume %s: want one per service (one writer per bbolt file)", name, other, data.source)
		}
		volumeOwner[data.source] = name
	}

	checkCollector(t, f)
}

// checkCollector follows the traces from OTEL_EXPORTER_OTLP_ENDPOINT through
// the collector's configuration to Jaeger.
func checkCollector(t *testing.T, f composeFile) {
	col, ok := f.Services["otel-collector"]
	if !ok {
		t.Fatal("no otel-collector service")
	}
	if !strings.HasPrefix(col.Image, "otel/opentelemetry-collector") {
		t.Errorf("otel-collector image %q", col.Image)
	}
	var cfgPath string
	for _, a := range col.Command {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = v
		}
	}
	m, ok := col.mountAt(cfgPath)
	if cfgPath == "" || !ok {
		t.Fatalf("otel-collector: command %q does not name a mounted --config", col.Command)
	}
	want, _ := filepath.Abs(filepath.Join(root, "deploy", "otel-collector.yaml"))
	if m.source != want {
		t.Errorf("otel-collector mounts %s at %s, want %s", m.source, cfgPath, want)
	}
	raw, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers  map[string]map[string]any `json:"receivers"`
		Processors map[string]any            `json:"processors"`
		Exporters  map[string]map[string]any `json:"exporters"`
		Extensions map[string]any            `json:"extensions"`
		Service    struct {
			Extensions []string `json:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("deploy/otel-collector.yaml: %v", err)
	}
	grpcEndpoint := fmt.Sprint(dig(cfg.Receivers["otlp"], "protocols", "grpc", "endpoint"))
	if !strings.HasSuffix(grpcEndpoint, ":4317") {
		t.Errorf("the otlp receiver listens on %q for gRPC, the components send to :4317", grpcEndpoint)
	}
	traces, ok := cfg.Service.Pipelines["traces"]
	if !ok {
		t.Fatal("deploy/otel-collector.yaml: no traces pipeline")
	}
	if !slices.Contains(traces.Receivers, "otlp") {
		t.Errorf("the traces pipeline does not receive otlp: %v", traces.Receivers)
	}
	// Every component a pipeline names is configured (the collector refuses
	// to start otherwise).
	for kind, names := range map[string][]string{"receiver": traces.Receivers, "processor": traces.Processors, "exporter": traces.Exporters} {
		for _, n := range names {
			var found bool
			switch kind {
			case "receiver":
				_, found = cfg.Receivers[n]
			case "processor":
				_, found = cfg.Processors[n]
			case "exporter":
				_, found = cfg.Exporters[n]
			}
			if !found {
				t.Errorf("the traces pipeline names %s %q, which is not configured", kind, n)
			}
		}
	}
	toJaeger := false
	for _, n := range traces.Exporters {
		if strings.SplitN(n, "/", 2)[0] == "otlp" && fmt.Sprint(cfg.Exporters[n]["endpoint"]) == "jaeger:4317" {
			toJaeger = true
		}
	}
	if !toJaeger {
		t.Error("no otlp exporter of the traces pipeline sends to jaeger:4317")
	}
	j, ok := f.Services["jaeger"]
	if !ok || !strings.HasPrefix(j.Image, "jaegertracing/all-in-one") || j.Environment["COLLECTOR_OTLP_ENABLED"] != "true" {
		t.Errorf("want a jaeger service (jaegertracing/all-in-one, COLLECTOR_OTLP_ENABLED=true), got %+v", j)
	}
	for name, s := range f.Services {
		if !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q: want a pinned tag", name, s.Image)
		}
	}
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// --- deploy/kubernetes ---

type manifests struct {
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	ingresses    []*networkingv1.Ingress
	kinds        map[string]int
}

// loadKustomize renders deploy/kubernetes and decodes every object strictly
// into its API type: a misspelt or misplaced field fails here, not at apply.
func loadKustomize(t *testing.T) manifests {
	t.Helper()
	out := tool(t, "kustomize", "build", filepath.Join(root, "deploy", "kubernetes"))
	m := manifests{
		statefulSets: map[string]*appsv1.StatefulSet{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}, kinds: map[string]int{},
	}
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("kustomize build: %v", err)
		}
		m.kinds[head.Kind]++
		if head.Kind != "Namespace" && head.Metadata.Namespace != "rapport" {
			t.Errorf("%s %s: namespace %q, want rapport", head.Kind, head.Metadata.Name, head.Metadata.Namespace)
		}
		var obj any
		switch head.Kind {
		case "StatefulSet":
			o := &appsv1.StatefulSet{}
			m.statefulSets[head.Metadata.Name], obj = o, o
		case "Deployment":
			o := &appsv1.Deployment{}
			m.deployments[head.Metadata.Name], obj = o, o
		case "Service":
			o := &corev1.Service{}
			m.services[head.Metadata.Name], obj = o, o
		case "ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps[head.Metadata.Name], obj = o, o
		case "Ingress":
			o := &networkingv1.Ingress{}
			m.ingresses, obj = append(m.ingresses, o), o
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "Namespace":
			obj = &corev1.Namespace{}
		case "Secret":
			t.Errorf("Secret %s in the manifests: secret material stays out of the repository", head.Metadata.Name)
			continue
		default:
			t.Errorf("%s %s: a kind this test does not know; add it", head.Kind, head.Metadata.Name)
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s %s: %v", head.Kind, head.Metadata.Name, err)
		}
	}
	return m
}

// podChecks are what every component's pod must have.
func podChecks(t *testing.T, m manifests, name string, tmpl corev1.PodTemplateSpec) *corev1.Container {
	t.Helper()
	spec := tmpl.Spec
	if a := tmpl.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != fmt.Sprint(metricsPort) {
		t.Errorf("%s: want prometheus.io/scrape \"true\" and prometheus.io/port %q, got %v", name, fmt.Sprint(metricsPort), a)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: want runAsNonRoot", name)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(spec.Containers))
	}
	c := &spec.Containers[0]
	if !strings.HasPrefix(c.Image, "rapport") {
		t.Errorf("%s: image %q, want the rapport image", name, c.Image)
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--target="+name) {
		t.Errorf("%s: args %q, want serve --target=%s", name, c.Args, name)
	}
	if !hasPort(c, "metrics", metricsPort) {
		t.Errorf("%s: no container port metrics %d", name, metricsPort)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
		t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", name, r)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("%s: want a read-only root filesystem", name)
	}

	// Configuration: the shared ConfigMap, by the name kustomize gave it.
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		cm, ok := m.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s is not in the manifests", name, from.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for _, s := range stateful {
		if got, want := env[addrEnv(s.name)], fmt.Sprintf("%s:%d", s.name, s.port); got != want {
			t.Errorf("%s: %s=%q, want %q (the Service it dials)", name, addrEnv(s.name), got, want)
		}
	}
	if env["RAPPORT_METRICS_ADDR"] != fmt.Sprintf("0.0.0.0:%d", metricsPort) || env["RAPPORT_LOG_FORMAT"] != "json" ||
		!strings.HasPrefix(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http") {
		t.Errorf("%s: want RAPPORT_METRICS_ADDR, RAPPORT_LOG_FORMAT=json and OTEL_EXPORTER_OTLP_ENDPOINT, got %v", name, env)
	}

	// The service secret: the Secret's key, mounted where the flag says.
	secretPath := env["RAPPORT_SERVICE_SECRET_FILE"]
	if path.Base(secretPath) != secretFile {
		t.Errorf("%s: RAPPORT_SERVICE_SECRET_FILE=%q: want a file named %s (the Secret's key)", name, secretPath, secretFile)
	}
	var vol string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == path.Dir(secretPath) {
			vol = vm.Name
			if !vm.ReadOnly {
				t.Errorf("%s: the secret mount is not read-only", name)
			}
		}
	}
	found := false
	for _, v := range spec.Volumes {
		if v.Name == vol && v.Secret != nil && v.Secret.SecretName == "rapport-service-secret" {
			found = true
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("%s: the secret volume is readable by others", name)
			}
			// The files belong to root and the pod's fsGroup (a supplementary
			// group of the container): without one, the non-root user cannot
			// read them.
			if sc := spec.SecurityContext; sc == nil || sc.FSGroup == nil {
				t.Errorf("%s: the secret's files are not readable by the non-root user: the pod has no fsGroup", name)
			}
		}
	}
	if !found {
		t.Errorf("%s: %s is not mounted from the Secret rapport-service-secret", name, path.Dir(secretPath))
	}
	checkSelected(t, m, name, tmpl)
	return c
}

// checkSelected checks that the component's Service selects its pods.
func checkSelected(t *testing.T, m manifests, name string, tmpl corev1.PodTemplateSpec) {
	t.Helper()
	svc, ok := m.services[name]
	if !ok {
		t.Errorf("no Service %s", name)
		return
	}
	if len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s selects nothing", name)
	}
	for k, v := range svc.Spec.Selector {
		if tmpl.Labels[k] != v {
			t.Errorf("Service %s selects %s=%s, which %s's pods do not have", name, k, v, name)
		}
	}
}

func hasPort(c *corev1.Container, name string, port int) bool {
	for _, p := range c.Ports {
		if p.Name == name && int(p.ContainerPort) == port {
			return true
		}
	}
	return false
}

func TestKustomize(t *testing.T) {
	m := loadKustomize(t)
	for _, s := range stateful {
		t.Run(s.name, func(t *testing.T) {
			ss, ok := m.statefulSets[s.name]
			if !ok {
				t.Fatalf("no StatefulSet %s", s.name)
			}
			if r := ss.Spec.Replicas; r == nil || *r != 1 {
				t.Errorf("replicas %s: want exactly 1 (one writer per bbolt file)", ptrString(r))
			}
			if ss.Spec.ServiceName != s.name {
				t.Errorf("serviceName %q, want %q", ss.Spec.ServiceName, s.name)
			}
			c := podChecks(t, m, s.name, ss.Spec.Template)
			if want := fmt.Sprintf("--%s-addr=0.0.0.0:%d", s.name, s.port); !slices.Contains(c.Args, want) {
				t.Errorf("args %q: want %s", c.Args, want)
			}
			if !hasPort(c, "grpc", s.port) {
				t.Errorf("no container port grpc %d", s.port)
			}
			for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.GRPC == nil || int(p.GRPC.Port) != s.port {
					t.Errorf("%sProbe %+v: want a gRPC probe on port %d", kind, p, s.port)
				}
			}
			// The bbolt file on the pod's own volume.
			if len(ss.Spec.VolumeClaimTemplates) != 1 {
				t.Fatalf("%d volumeClaimTemplates, want 1", len(ss.Spec.VolumeClaimTemplates))
			}
			claim := ss.Spec.VolumeClaimTemplates[0]
			if claim.Spec.Resources.Requests.Storage().IsZero() {
				t.Error("the volume claim requests no storage")
			}
			mounted := false
			for _, vm := range c.VolumeMounts {
				if vm.Name == claim.Name && vm.MountPath == "/data" && !vm.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("the claim %s is not mounted read-write at /data", claim.Name)
			}
			if fs := ss.Spec.Template.Spec.SecurityContext.FSGroup; fs == nil {
				t.Error("no fsGroup: the non-root user may not write its volume")
			}
			svc := m.services[s.name]
			if svc != nil {
				if svc.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("Service %s: clusterIP %q, want a headless Service", s.name, svc.Spec.ClusterIP)
				}
				if !servicePort(svc, s.port) {
					t.Errorf("Service %s has no port %d", s.name, s.port)
				}
			}
		})
	}

	t.Run(gatewayName, func(t *testing.T) {
		if _, ok := m.statefulSets[gatewayName]; ok {
			t.Error("the gateway is stateless: want a Deployment, not a StatefulSet")
		}
		d, ok := m.deployments[gatewayName]
		if !ok {
			t.Fatal("no Deployment gateway")
		}
		c := podChecks(t, m, gatewayName, d.Spec.Template)
		if !hasPort(c, "http", httpPort) {
			t.Errorf("no container port http %d", httpPort)
		}
		if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
			t.Errorf("readinessProbe %+v: want GET /readyz", p)
		}
		if c.LivenessProbe == nil {
			t.Error("no livenessProbe")
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				t.Errorf("the stateless gateway has a volume claim %s", v.PersistentVolumeClaim.ClaimName)
			}
		}
		// Behind an Ingress, on a port its Service has.
		svc := m.services[gatewayName]
		if len(m.ingresses) == 0 {
			t.Fatal("no Ingress")
		}
		for _, ing := range m.ingresses {
			for _, rule := range ing.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					b := p.Backend.Service
					if b == nil || b.Name != gatewayName {
						t.Errorf("Ingress %s routes %s to %+v, want the gateway", ing.Name, p.Path, b)
						continue
					}
					if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
						return (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
					}) {
						t.Errorf("Ingress %s: the gateway Service has no port %+v", ing.Name, b.Port)
					}
				}
			}
		}
	})

	if len(m.statefulSets) != len(stateful) {
		t.Errorf("%d StatefulSets, want %d (one per stateful service)", len(m.statefulSets), len(stateful))
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func servicePort(svc *corev1.Service, port int) bool {
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == port {
			return true
		}
	}
	return false
}
