package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// goreleaserTarget is one platform of a build.
type goreleaserTarget struct {
	Goos   string `yaml:"goos"`
	Goarch string `yaml:"goarch"`
}

// goreleaserConfig is the part of .goreleaser.yaml (version 2) that the
// release depends on.
type goreleaserConfig struct {
	Version int `yaml:"version"`
	Builds  []struct {
		ID      string             `yaml:"id"`
		Main    string             `yaml:"main"`
		Binary  string             `yaml:"binary"`
		Env     []string           `yaml:"env"`
		Flags   []string           `yaml:"flags"`
		Ldflags []string           `yaml:"ldflags"`
		Goos    []string           `yaml:"goos"`
		Goarch  []string           `yaml:"goarch"`
		Ignore  []goreleaserTarget `yaml:"ignore"`
	} `yaml:"builds"`
	Archives []struct {
		IDs             []string `yaml:"ids"`
		Formats         []string `yaml:"formats"`
		FormatOverrides []struct {
			Goos    string   `yaml:"goos"`
			Formats []string `yaml:"formats"`
		} `yaml:"format_overrides"`
		Files []string `yaml:"files"`
	} `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
}

// readGoReleaserConfig reads the repository's .goreleaser.yaml.
func readGoReleaserConfig() (root string, cfg goreleaserConfig, err error) {
	root, err = filepath.Abs("../..")
	if err != nil {
		return "", cfg, err
	}
	raw, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		return "", cfg, err
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return "", cfg, fmt.Errorf(".goreleaser.yaml: %w", err)
	}
	return root, cfg, nil
}

// releaseVersion is the version releaseBinary is built with: not the
// test binary's ("dev").
const releaseVersion = "v1.2.3-releasetest"

var releaseBuild struct {
	once sync.Once
	bin  string
	err  error
}

// releaseBinary returns this package's binary built, once for all tests,
// with the release's ldflags (.goreleaser.yaml) and its -X variable set
// to releaseVersion. Only the ldflags: -trimpath and CGO_ENABLED=0 would
// rebuild every package rather than relink the test's binary.
func releaseBinary(t *testing.T) string {
	t.Helper()
	releaseBuild.once.Do(func() {
		releaseBuild.err = func() error {
			_, cfg, err := readGoReleaserConfig()
			if err != nil {
				return err
			}
			if len(cfg.Builds) != 1 || len(cfg.Builds[0].Ldflags) != 1 {
				return fmt.Errorf("want one build with one ldflags entry in .goreleaser.yaml, got %+v", cfg.Builds)
			}
			fields := strings.Fields(cfg.Builds[0].Ldflags[0])
			var ldflags []string
			for i := 0; i < len(fields); i++ {
				if fields[i] == "-X" && i+1 < len(fields) {
					target, value, _ := strings.Cut(fields[i+1], "=")
					ldflags = append(ldflags, "-X", target+"="+releaseVersion)
					i++
					// The value is a template ("v{{ .Version }}"), spaces and all.
					for strings.Contains(value, "{{") && !strings.Contains(value, "}}") && i+1 < len(fields) {
						i++
						value += " " + fields[i]
					}
					continue
				}
				ldflags = append(ldflags, fields[i])
			}
			bin := filepath.Join(filepath.Dir(binary), "mcp-task-relay-release")
			out, err := exec.Command("go", "build", "-o", bin, "-ldflags", strings.Join(ldflags, " "), ".").CombinedOutput()
			if err != nil {
				return fmt.Errorf("go build -ldflags %q: %w: %s", strings.Join(ldflags, " "), err, out)
			}
			releaseBuild.bin = bin
			return nil
		}()
	})
	require.NoError(t, releaseBuild.err)
	return releaseBuild.bin
}

// TestGoReleaserConfig checks the release configuration against the
// source: the main package it builds, the platforms, the flags, the files
// it packs, and that its -X ldflag sets the version the binary prints.
func TestGoReleaserConfig(t *testing.T) {
	t.Parallel()
	root, cfg, err := readGoReleaserConfig()
	require.NoError(t, err)
	require.Equal(t, 2, cfg.Version, "GoReleaser configuration schema version")

	require.Len(t, cfg.Builds, 1)
	b := cfg.Builds[0]
	require.Equal(t, "./cmd/mcp-task-relay", b.Main)
	list := exec.Command("go", "list", "-f", "{{.Name}}", b.Main)
	list.Dir = root
	out, err := list.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "main", strings.TrimSpace(string(out)), "builds.main is a main package")
	require.Equal(t, "mcp-task-relay", b.Binary)
	require.Contains(t, b.Env, "CGO_ENABLED=0")
	require.Contains(t, b.Flags, "-trimpath")

	// The targets: linux and darwin on amd64 and arm64, windows on amd64.
	var targets []string
	for _, goos := range b.Goos {
		for _, goarch := range b.Goarch {
			if !slices.Contains(b.Ignore, goreleaserTarget{Goos: goos, Goarch: goarch}) {
				targets = append(targets, goos+"/"+goarch)
			}
		}
	}
	slices.Sort(targets)
	require.Equal(t, []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64"}, targets)

	// The ldflags: stripped, and the version set through a variable that
	// the binary prints.
	require.Len(t, b.Ldflags, 1)
	fields := strings.Fields(b.Ldflags[0])
	require.Contains(t, fields, "-s")
	require.Contains(t, fields, "-w")
	i := slices.Index(fields, "-X")
	require.True(t, i >= 0 && i+1 < len(fields), "ldflags %q set no variable", b.Ldflags[0])
	_, value, ok := strings.Cut(fields[i+1], "=")
	require.True(t, ok, "-X %s", fields[i+1])
	require.Equal(t, "v{{", value[:min(3, len(value))], "the version is the release's, v-prefixed: %s", value)
	// Built with these ldflags, the -X variable set to releaseVersion.
	bin := releaseBinary(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		require.Equal(t, "mcp-task-relay "+releaseVersion+"\n", string(out), "%v", args)
	}

	// Archives: tar.gz, zip for windows, with files that exist; checksums.
	require.Len(t, cfg.Archives, 1)
	a := cfg.Archives[0]
	require.Equal(t, []string{b.ID}, a.IDs)
	require.Equal(t, []string{"tar.gz"}, a.Formats)
	require.Len(t, a.FormatOverrides, 1)
	require.Equal(t, "windows", a.FormatOverrides[0].Goos)
	require.Equal(t, []string{"zip"}, a.FormatOverrides[0].Formats)
	require.Contains(t, a.Files, "README.md")
	for _, f := range a.Files {
		_, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err, "archives.files: %s", f)
	}
	require.NotEmpty(t, cfg.Checksum.NameTemplate)
}
