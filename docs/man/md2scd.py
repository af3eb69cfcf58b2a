#!/usr/bin/env python3
"""md2scd.py PAGE CONFIGURATION_MD OUT_SCD: writes the scdoc source of a section 5 man page
(kaaval-agent.yaml or kaaval-collector.yaml) from the configuration reference, so that every
key is described in docs/configuration.md alone and the pages follow it at each build.

What it takes from the reference: the "Common rules" list (DESCRIPTION) and the sections of
the page's file ("## agent.yaml", or "## collector.yaml" and "## Alert rules"), each `###`
heading becoming a man section. An annotated ```yaml block becomes a list of keys: each key
by its path (`spool.dir`, `credentials[].user`) with the value the example gives and the
text of its comment; a block with few comments (a listing such as the built-in rules) stays
a literal block, as do blocks of other languages. Markdown code spans become bold."""
import re
import sys

PAGES = {
    "kaaval-agent.yaml": {
        "sections": ["agent.yaml"],
        "daemon": "kaaval-agent",
        "path": "/etc/kaaval/agent.yaml",
        "what": "configuration file of the kaaval agent",
        "state": "/var/lib/kaaval/agent",
        "other": "kaaval-collector.yaml",
    },
    "kaaval-collector.yaml": {
        "sections": ["collector.yaml", "Alert rules (rules file)"],
        "daemon": "kaaval-collector",
        "path": "/etc/kaaval/collector.yaml",
        "what": "configuration file of the kaaval collector",
        "state": "/var/lib/kaaval/collector",
        "other": "kaaval-agent.yaml",
    },
}


def esc(text):
    """Text shown as it is: scdoc's formatting characters escaped."""
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_")


def inline(text):
    """Markdown prose to scdoc: code spans bold, everything else shown as written."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: shown as written
        return esc(text)
    out = []
    for i, p in enumerate(parts):
        if i % 2 == 0:
            out.append(esc(p.replace("**", "")))
        elif p.strip():
            out.append("*" + esc(p.replace("\n", " ")) + "*")
        else:
            out.append(esc("`" + p + "`"))
    return "".join(out)


def lead(text):
    """A line of text (its tabs kept) that scdoc must not take for a table, a list item or a
    heading; roff would take a line starting with a dot for a request: refused."""
    body = text.lstrip("\t")
    if body[:1] == ".":
        raise SystemExit(f"md2scd.py: a paragraph starts with '.': {body[:40]}")
    if body[:1] in ("[", "|", "]", ":") or body[:2] == "# " or (body[:2] == "- " and
                                                                text != body):
        return text[: len(text) - len(body)] + "\\" + body
    return text


def split_comment(line):
    """(code, comment or None): a '#' outside quotes, at the start or after a blank."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1 :]
    return line.rstrip(), None


def depth(code):
    d = 0
    for ch in re.sub(r"'[^']*'|\"[^\"]*\"", "", code):
        if ch in "[{":
            d += 1
        elif ch in "]}":
            d -= 1
    return d


KEY = re.compile(r"(-\s+)?([a-z_0-9]+):(?:\s+(.*))?$")


def yaml_block(lines, out):
    """An annotated YAML example as a list of keys (or literal when hardly annotated)."""
    commented = sum(1 for l in lines if split_comment(l)[1] is not None)
    if commented * 3 < len(lines):
        literal_block(lines, out)
        return
    entries = []  # [path, value, [paragraph, ...]] or ["", prose, []]
    stack = []  # (indent, path)
    open_depth = 0
    owner = None  # the entry whose description a "#   ..." line continues
    for line in lines:
        code, comment = split_comment(line)
        cur = entries[-1] if entries else None
        if comment is not None:
            comment = comment.rstrip()
        if not code.strip():
            if comment is None:
                continue
            col = line.index("#")
            if owner is not None and (comment.startswith("  ") or col > 0):
                if comment.startswith("  ") and owner[2]:
                    owner[2][-1] += " " + comment.strip()
                else:
                    owner[2].append(comment.strip())
            else:
                entries.append(["", comment.strip(), []])
                owner = None
            continue
        if open_depth > 0 and cur is not None:  # a flow collection going on
            cur[1] += " " + code.strip()
            open_depth += depth(code)
            if comment is not None and comment.strip():
                if comment.startswith("  ") and owner is not None and owner[2]:
                    owner[2][-1] += " " + comment.strip()
                else:
                    cur[2].append(comment.strip())
                    owner = cur
            continue
        indent = len(code) - len(code.lstrip())
        s = code.strip()
        m = KEY.match(s)
        dash = s.startswith("- ")
        if m is None and not dash and indent == 0:  # prose inside the example
            entries.append(["", s, []])
            stack, owner = [], None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if dash:
            item = (parent + "[]") if parent else "[]"
            if m is None:
                path, value = item, s[2:].strip()
            else:
                stack.append((indent, item))
                path, value = item + "." + m.group(2), (m.group(3) or "")
                stack.append((indent + len(m.group(1)), path))
        elif m is not None:
            path = (parent + "." if parent else "") + m.group(2)
            value = m.group(3) or ""
            stack.append((indent, path))
        else:
            path, value = parent, s
        open_depth = depth(value)
        entry = [path, value, []]
        entries.append(entry)
        if comment is not None and comment.strip():
            if comment.startswith("  ") and owner is not None and owner[2]:
                owner[2][-1] += " " + comment.strip()
            else:
                entry[2].append(comment.strip())
                owner = entry
    for path, value, text in entries:
        if not path:
            out.append(lead(inline(value)))
            out.append("")
            continue
        term = "*" + esc(path) + "*"
        if value:
            term += ": " + esc(value)
        out.append(term)
        for i, para in enumerate(text):
            if i > 0:
                out.append("")
            out.append(lead("\t" + inline(para)))
        out.append("")


def literal_block(lines, out):
    out.append("```")
    out.extend(l.rstrip() for l in lines)
    out.append("```")
    out.append("")


def body(md_lines, out):
    """Markdown paragraphs, lists, headings and code blocks to scdoc."""
    i = 0
    para = []

    def flush():
        if para:
            out.append(lead(inline(" ".join(l.strip() for l in para))))
            out.append("")
            para.clear()

    while i < len(md_lines):
        line = md_lines[i]
        if line.startswith("```"):
            flush()
            lang = line[3:].strip()
            j = i + 1
            while j < len(md_lines) and not md_lines[j].startswith("```"):
                j += 1
            block = md_lines[i + 1 : j]
            if lang == "yaml":
                yaml_block(block, out)
            else:
                literal_block(block, out)
            i = j + 1
            continue
        if line.startswith("### "):
            flush()
            title = re.sub(r"\s*\((agent|collector)\.yaml\)$", "", line[4:].strip())
            out.append("# " + esc(title.upper()))
            out.append("")
        elif not line.strip():
            flush()
        elif line.startswith("- ") and para:
            flush()
            para.append(line)
        else:
            para.append(line)
        i += 1
    flush()


def sections(md):
    """{"## title": [lines]} of the reference, and the common rules' lines."""
    found, cur, common = {}, None, []
    in_common = False
    for line in md.split("\n"):
        if line.startswith("## "):
            cur = line[3:].strip()
            found[cur] = []
            in_common = False
            continue
        if cur is None:
            if line.startswith("Common rules"):
                in_common = True
            elif in_common:
                common.append(line)
            continue
        found[cur].append(line)
    return found, common


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in PAGES:
        sys.stderr.write("usage: md2scd.py kaaval-agent.yaml|kaaval-collector.yaml "
                         "configuration.md out.scd\n")
        return 2
    name, md_path, out_path = sys.argv[1:]
    page = PAGES[name]
    with open(md_path, encoding="utf-8") as f:
        found, common = sections(f.read())
    out = [f"{name}(5)", "", "# NAME", "", f"{name} - {page['what']}", "",
           "# SYNOPSIS", "", page["path"], "", "# DESCRIPTION", "",
           f"*{page['daemon']}*(8) reads its configuration from one YAML file, named with "
           f"*-c*; installed, that is {page['path']}. This page is made from the project's "
           "configuration reference, docs/configuration.md, which the parsers' key tables "
           "are checked against, so it names every key there is. Rules for the whole file:",
           ""]
    body(common, out)
    for title in page["sections"]:
        if title not in found:
            sys.stderr.write(f"md2scd.py: no section '## {title}' in {md_path}\n")
            return 1
        if title != page["sections"][0]:
            out.extend(["# " + esc(title.upper()), ""])
        else:
            out.extend(["# KEYS", ""])
        body(found[title], out)
    out += ["# FILES", "", page["path"], "\tthe configuration file", "",
            page["state"], f"\tthe state folder of the packaged service "
            f"({page['daemon']}.service)", "",
            "# SEE ALSO", "",
            f"*{page['daemon']}*(8), *{page['other']}*(5), *kaaval-certs*(1), "
            "*kaavalctl*(1). Commented examples of both files are in packaging/examples/ of the "
            "source tree.", ""]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
