package dashboard

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRenderMarkdownEscapesEverything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"# Title", "<h3>Title</h3>\n"},
		{"hello <script>alert(1)</script>", "<p>hello &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"},
		{"a `b<i>` **c**", "<p>a <code>b&lt;i&gt;</code> <strong>c</strong></p>\n"},
		{"- one\n- <b>two</b>", "<ul>\n<li>one</li>\n<li>&lt;b&gt;two&lt;/b&gt;</li>\n</ul>\n"},
		{"1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>\n"},
		{"```\n<img src=x onerror=alert(1)>\n```", "<pre><code>&lt;img src=x onerror=alert(1)&gt;</code></pre>\n"},
		{"[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"},
		{"line one\nline two\n\nnext", "<p>line one line two</p>\n<p>next</p>\n"},
		{`"quoted" & 'single'`, "<p>&#34;quoted&#34; &amp; &#39;single&#39;</p>\n"},
	} {
		require.Equal(t, tc.want, RenderMarkdown(tc.in), tc.in)
	}
}

func TestParseDiff(t *testing.T) {
	t.Parallel()
	patch := `diff --git a/hello.txt b/hello.txt
index ce01362..a1b2c3d 100644
--- a/hello.txt
+++ b/hello.txt
@@ -1,2 +1,3 @@
 hello
-old
+new
+more
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1 @@
+fresh
diff --git a/img.png b/img.png
Binary files a/img.png and b/img.png differ
`
	d := ParseDiff([]byte(patch), 1<<20)
	require.False(t, d.Truncated)
	require.Len(t, d.Files, 3)
	f := d.Files[0]
	require.Equal(t, "hello.txt", f.Path)
	require.Equal(t, 2, f.Added)
	require.Equal(t, 1, f.Removed)
	require.Equal(t, []DiffLine{
		{Kind: "hunk", Text: "@@ -1,2 +1,3 @@"},
		{Kind: "ctx", Text: "hello", Old: 1, New: 1},
		{Kind: "del", Text: "old", Old: 2},
		{Kind: "add", Text: "new", New: 2},
		{Kind: "add", Text: "more", New: 3},
	}, f.Lines)
	require.Equal(t, "new.txt", d.Files[1].Path)
	require.Equal(t, 1, d.Files[1].Added)
	require.True(t, d.Files[2].Binary)

	cut := ParseDiff([]byte(patch), 60)
	require.True(t, cut.Truncated)
	require.Len(t, cut.Files, 1)
}
