// Tests of the repository's documentation as a whole: README.md, docs/ and
// deploy/README.md stay true to the tree. They read files only, so they sit
// at the module root, next to what they check.
package fcaudit_test

import (
	"bufio"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// markdownFiles are the documents a reader of the repository is sent to.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "deploy/README.md"}
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("docs/*.md: %v (%d files)", err, len(docs))
	}
	return append(files, docs...)
}

// skipDir says which directories hold no documentation or packages of ours.
func skipDir(name string) bool {
	return name != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
		name == "testdata" || name == "bin" || name == "vendor" || name == "node_modules")
}

// outsideFences returns text with the lines of fenced code blocks blanked
// (line numbers are kept), so that code samples are not read as links.
func outsideFences(text string) string {
	lines := strings.Split(text, "\n")
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			lines[i] = ""
			continue
		}
		if in {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// linkTarget matches the target of an inline Markdown link or image,
// "[text](target)" or "[text](target "title")"; the text may span lines.
var linkTarget = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// headingSlugs returns the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation other than '-' and '_' dropped, spaces
// turned into '-', repeats numbered -1, -2, ….
func headingSlugs(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	slugs := map[string]bool{}
	seen := map[string]int{}
	for _, l := range strings.Split(outsideFences(string(b)), "\n") {
		h := strings.TrimLeft(l, "#")
		if h == l || !strings.HasPrefix(h, " ") {
			continue
		}
		var s strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(h)) {
			switch {
			case r == ' ':
				s.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				s.WriteRune(r)
			}
		}
		slug := s.String()
		if n := seen[slug]; n > 0 {
			slugs[slug+"-"+strconv.Itoa(n)] = true
		} else {
			slugs[slug] = true
		}
		seen[slug]++
	}
	return slugs
}

// TestMarkdownLinksResolve: every relative link in README.md, docs/*.md and
// deploy/README.md names a file or directory of the repository, and every
// anchor into a Markdown file names one of its headings.
func TestMarkdownLinksResolve(t *testing.T) {
	checked := 0
	for _, file := range markdownFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkTarget.FindAllStringSubmatch(outsideFences(string(b)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if p != "" {
				resolved = path.Join(path.Dir(file), p)
			}
			checked++
			if strings.HasPrefix(resolved, "../") {
				t.Errorf("%s: link %q leaves the repository", file, target)
				continue
			}
			if _, err := os.Stat(resolved); err != nil {
				t.Errorf("%s: link %q: %s does not exist", file, target, resolved)
				continue
			}
			if anchor != "" {
				if !strings.HasSuffix(resolved, ".md") {
					t.Errorf("%s: link %q: anchor into a file that is not Markdown", file, target)
				} else if !headingSlugs(t, resolved)[anchor] {
					t.Errorf("%s: link %q: %s has no heading #%s", file, target, resolved, anchor)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d relative links found: the link pattern no longer matches", checked)
	}
}

// mdName matches a Markdown file named in prose or a comment.
var mdName = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)

// issueRef matches a reference to an issue by number. Issues live outside
// the repository; a comment or document says what it guards instead.
var issueRef = regexp.MustCompile(`(?i)\bissues? (#|no\.? ?)?[0-9]+|\bissue #`)

// TestDocsNameOnlyRepositoryFiles: every Markdown document named in
// documentation, Go source (comments included), the OpenAPI description or
// the Makefile exists in the repository, and none of them cites an issue by
// number.
func TestDocsNameOnlyRepositoryFiles(t *testing.T) {
	mdBase := map[string]bool{}
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".md"):
			mdBase[d.Name()] = true
			files = append(files, p)
		case strings.HasSuffix(p, ".go") && p != "docs_test.go",
			strings.HasSuffix(p, ".yaml"), strings.HasSuffix(p, ".yml"), d.Name() == "Makefile", d.Name() == "Dockerfile":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !mdBase["README.md"] || len(files) < 50 {
		t.Fatalf("walk found %d files, README.md %v", len(files), mdBase["README.md"])
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			for _, name := range mdName.FindAllString(line, -1) {
				if fileExists(name) || fileExists(path.Join(path.Dir(file), name)) ||
					!strings.Contains(name, "/") && mdBase[name] {
					continue
				}
				t.Errorf("%s:%d names %s, which is not in the repository", file, n, name)
			}
			if m := issueRef.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q: say what is guarded instead (issues are not in the repository)", file, n, m)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		f.Close()
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestReadmePackageMap: the README's package map lists every directory that
// holds Go files, once, and nothing else; its design-notes paragraph names
// every entry of docs/.
func TestReadmePackageMap(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, after, ok := strings.Cut(readme, "\n## Package map\n")
	if !ok {
		t.Fatal("README.md has no \"## Package map\" section")
	}
	_, block, ok := strings.Cut(after, "```\n")
	if !ok {
		t.Fatal("the package map has no code block")
	}
	block, rest, ok := strings.Cut(block, "```")
	if !ok {
		t.Fatal("the package map's code block is not closed")
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(block, "\n") {
		if l == "" || l[0] == ' ' {
			continue // a continuation line
		}
		dir := strings.Fields(l)[0]
		if !strings.HasSuffix(dir, "/") {
			t.Errorf("package map line %q does not start with a directory/", l)
			continue
		}
		dir = strings.TrimSuffix(dir, "/")
		if listed[dir] {
			t.Errorf("package map lists %s/ twice", dir)
		}
		listed[dir] = true
	}

	packages := map[string]bool{}
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && skipDir(d.Name()) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && filepath.Dir(p) != "." {
			packages[filepath.ToSlash(filepath.Dir(p))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !packages["store"] || !packages["cmd/fcaudit"] {
		t.Fatalf("walk found no store or cmd/fcaudit: %v", packages)
	}
	for _, p := range sortedKeys(packages) {
		if !listed[p] {
			t.Errorf("package %s/ is missing from README.md's package map", p)
		}
	}
	for _, p := range sortedKeys(listed) {
		if !packages[p] {
			t.Errorf("README.md's package map lists %s/, which holds no Go package", p)
		}
	}

	// The paragraph after the map lists the design notes.
	notes, _, _ := strings.Cut(rest, "\n## ")
	entries, err := os.ReadDir("docs")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.Contains(notes, "docs/"+e.Name()) {
			t.Errorf("docs/%s is not named after README.md's package map", e.Name())
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
