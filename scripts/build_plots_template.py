"""Build the page template that lets `dvc plots show` / `dvc plots diff` draw offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without a network it draws
nothing. This template carries the three libraries inline (from node_modules, installed by
`npm ci` from package-lock.json) and leaves out DVC's `{scripts}` placeholder, where DVC would
put its CDN links. `.dvc/config` points `plots.html_template` at the result.

    python scripts/build_plots_template.py node_modules build/plots.html
"""

from __future__ import annotations

import sys
from pathlib import Path

LIBRARIES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
             "vega-embed/build/vega-embed.min.js")  # fmt: skip

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>MNIST CNN: DVC plots</title>
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def build(node_modules: Path, output: Path) -> None:
    scripts = []
    for library in LIBRARIES:
        code = (node_modules / library).read_text(encoding="utf-8")
        if "</script" in code:
            raise SystemExit(f"{library}: contains '</script' and cannot be inlined")
        scripts.append(f"    <script>/* {library} */\n{code}\n    </script>")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    partial.write_text(PAGE.format(scripts="\n".join(scripts)), encoding="utf-8")
    partial.replace(output)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
