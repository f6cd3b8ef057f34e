// Command render renders a Helm chart the way `helm template` does, for CI without a helm binary.
//
// It uses what Helm 3's engine (pkg/engine) is built from: Go's text/template with
// missingkey=zero, Masterminds/sprig v3's TxtFuncMap without env/expandenv, Helm's include,
// required, tpl, toYaml/fromYaml/toJson/fromJson (YAML through ghodss/yaml, whose fork
// sigs.k8s.io/yaml Helm uses), every template of the chart parsed into one set so partials
// (_*.tpl) can be included, "<no value>" removed from the output, values read as Helm reads them
// (YAML to JSON, numbers as float64) and user values merged over the chart's; lookup returns an
// empty object, as it does in `helm template` (no cluster). Not covered: subcharts, lookup
// against a cluster, .Capabilities beyond a fixed version, hooks, schema validation (the test
// validates values.schema.json with ajv).
//
// Build (Debian packages golang-go, golang-github-masterminds-sprig-dev,
// golang-github-ghodss-yaml-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render ./deploy/helm/render
//
// Usage: render <chart dir> <release> [values.json overrides...]; prints every rendered manifest
// as "---\n# Source: <chart>/templates/<file>\n<yaml>", then NOTES.txt as "# NOTES:" comments.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

// files is .Files: the chart's files by path relative to the chart root.
type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

// merge puts src over dst: maps merge key by key, anything else replaces (Helm's coalescing of
// user values over chart values; a null deletes the key).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func run() error {
	if len(os.Args) < 3 {
		return errors.New("usage: render <chart dir> <release> [values.json overrides...]")
	}
	dir, release := os.Args[1], os.Args[2]
	meta, err := readYAML(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, p := range os.Args[3:] {
		override, err := readYAML(p)
		if err != nil {
			return err
		}
		values = merge(values, override)
	}
	name, _ := meta["name"].(string)
	chart := map[string]interface{}{}
	for k, v := range meta { // .Chart.Name, .Chart.Version, .Chart.AppVersion, ...
		chart[strings.ToUpper(k[:1])+k[1:]] = v
	}
	chartFiles := files{}
	var templates []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(rel, "templates/") {
			templates = append(templates, rel)
		} else {
			chartFiles[rel] = data
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(templates)

	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	included := map[string]int{}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["toJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	// helm template renders without a cluster: lookup finds nothing.
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["tpl"] = func(tpl string, data interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		if _, err := c.New("tpl").Parse(tpl); err != nil {
			return "", err
		}
		var buf strings.Builder
		err = c.ExecuteTemplate(&buf, "tpl", data)
		return buf.String(), err
	}
	t.Funcs(funcs)
	for _, rel := range templates {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		if _, err := t.New(name + "/" + rel).Parse(string(data)); err != nil {
			return err
		}
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": "default", "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
		},
		"Files": chartFiles,
	}
	var out bytes.Buffer
	var notes string
	for _, rel := range templates {
		base := filepath.Base(rel)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name + "/" + rel, "BasePath": name + "/templates"}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name+"/"+rel, top); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = text
			continue
		}
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s/%s\n%s\n", name, rel, text)
	}
	for _, line := range strings.Split(strings.TrimSpace(notes), "\n") {
		fmt.Fprintf(&out, "# NOTES: %s\n", line)
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
