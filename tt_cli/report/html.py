"""The page around the sections: one self-contained HTML file, standard library only.

Images are embedded as base64 `data:` URIs and the style sheet is inline, so the file
opens anywhere with no network and no other file. Every text that came from data
(captions, class names, paths) goes through `escape`.

Example:
>>> page("tt report: demo", [section("settings", "Settings", "<p>hello</p>")])[:15]
'<!DOCTYPE html>'
>>> image_tag(b"\\xff\\xd8", "a red circle", "image/jpeg")[:45]
'<img alt="a red circle" src="data:image/jpeg;'
"""

import base64
import html

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.note { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; vertical-align: top; text-align: left; }
.settings { columns: 3 280px; column-gap: 24px; font-size: 0.85em; }
.settings div { break-inside: avoid; border-bottom: 1px solid #eee; padding: 1px 0; overflow-wrap: anywhere; }
.settings .name { color: #555; display: inline-block; min-width: 11em; }
.curves { display: flex; flex-wrap: wrap; gap: 6px; } .curves img { width: 370px; }
.gallery > tbody > tr { border-top: 1px solid #ddd; }
.gallery img { width: 96px; height: 96px; image-rendering: pixelated; object-fit: contain; background: #eee; }
.gallery ol { margin: 0; padding-left: 1.6em; }
.gallery li { margin: 1px 0; }
.hit { color: #0a6b2b; font-weight: 600; } .miss { color: #8a1c1c; }
li.hit::marker { content: "✓ "; } li.miss::marker { content: "✗ "; }
.images { display: flex; gap: 6px; } .images figure { margin: 0; text-align: center; font-size: 0.8em; }
figure.hit img { outline: 3px solid #1a9c45; } figure.miss img { outline: 1px solid #bbb; }
.score { color: #666; font-size: 0.85em; }
.runs { display: flex; flex-wrap: wrap; gap: 24px; }
table.confusion td { width: 1.6em; height: 1.6em; padding: 0; text-align: center; font-size: 0.7em; }
table.confusion th { font-size: 0.7em; font-weight: normal; white-space: nowrap; }
table.confusion th.column { writing-mode: vertical-rl; transform: rotate(180deg); }
.bar { display: inline-block; height: 0.8em; background: #4a7ab5; }
"""


def escape(text):
    return html.escape(str(text), quote=True)


def data_uri(data, mime):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_tag(data, alt, mime="image/jpeg", css_class=None):
    css = f' class="{css_class}"' if css_class else ""
    return f'<img alt="{escape(alt)}" src="{data_uri(data, mime)}"{css}>'


def section(section_id, title, body, note=None):
    """One `<section id=...>` with a heading, an optional grey note and its body."""
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section id="{escape(section_id)}">\n<h2>{escape(title)}</h2>\n{note_html}\n{body}\n</section>'


def name_values(rows, css_class):
    """(name, value) rows, both escaped, flowing in columns."""
    body = "".join(
        f'<div><span class="name">{escape(k)}</span> <span class="value">{escape(v)}</span></div>' for k, v in rows
    )
    return f'<div class="{css_class}">{body}</div>'


def page(title, sections, subtitle=""):
    sub = f'<p class="note">{escape(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>{sub}\n" + "\n".join(sections) + "\n</body></html>\n"
    )
