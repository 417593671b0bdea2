#!/usr/bin/env python3
"""Turns the C++ code blocks of README.md and docs/*.md into sources the build compiles.

Every ```cpp block must be preceded (on the line before the fence) by a marker that says
how it is compiled; a block without one is an error, so a new example cannot skip the test:

  <!-- doc-test: program NAME -->   a whole program: written to doc_program_NAME.cpp, built
                                    and run by ctest (it must exit 0)
  <!-- doc-test: declarations -->   namespace-scope code (types, functions, aliases)
  <!-- doc-test: statements -->     the body of a function; starts a new function
  <!-- doc-test: continued -->      more statements of the previous statements block, in the
                                    same scope (a walkthrough split by prose)

The fragments of one document go into one namespace, `doc_<stem>`, that sees the names of
tests/docs/prelude.hpp (`user`, `user_source`, `users`, `sessions`, `cache_type`). Statement
functions receive `cfg`, `db` and `cache` as parameters and may redeclare them. Functions are
compiled, not called. `#include` lines are moved to the top of the file. `#line` directives make
a compiler error name the Markdown file and line.

usage: extract.py OUTPUT_DIR SOURCE_DIR DOC...   (DOC relative to SOURCE_DIR)
Writes doc_snippets.cpp, doc_program_NAME.cpp and programs.txt (one NAME per line); files whose
content is unchanged are not rewritten, so the build does not redo them.
"""

import pathlib
import re
import sys

MARKER = re.compile(r"^<!--\s*doc-test:\s*(\w+)\s*(\S*)\s*-->\s*$")
FENCE_CPP = re.compile(r"^```cpp\s*$")
FENCE_END = re.compile(r"^```\s*$")
KINDS = {"program", "declarations", "statements", "continued"}


class DocError(Exception):
    pass


def blocks_of(path, text):
    """Yields (kind, name, first_line_number, lines) for each ```cpp block of a document."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not FENCE_CPP.match(lines[i]):
            i += 1
            continue
        fence = i
        marker = MARKER.match(lines[fence - 1]) if fence > 0 else None
        if not marker:
            raise DocError(f"{path}:{fence + 1}: a ```cpp block needs a "
                           "<!-- doc-test: KIND --> marker on the line before it "
                           f"(KIND: {', '.join(sorted(KINDS))}); see tests/docs/extract.py")
        kind, name = marker.group(1), marker.group(2)
        if kind not in KINDS:
            raise DocError(f"{path}:{fence}: unknown doc-test kind '{kind}' "
                           f"(expected one of {', '.join(sorted(KINDS))})")
        if kind == "program" and not re.fullmatch(r"[a-z0-9_]+", name):
            raise DocError(f"{path}:{fence}: 'program' needs a name of [a-z0-9_]+")
        end = fence + 1
        while end < len(lines) and not FENCE_END.match(lines[end]):
            end += 1
        if end == len(lines):
            raise DocError(f"{path}:{fence + 1}: the ```cpp block is not closed")
        yield kind, name, fence + 2, lines[fence + 1:end]
        i = end + 1


def split_includes(body):
    includes = [l.strip() for l in body if l.lstrip().startswith("#include")]
    code = ["" if l.lstrip().startswith("#include") else l for l in body]
    return includes, code


def write_if_changed(path, content):
    if path.exists() and path.read_text() == content:
        return
    path.write_text(content)


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, source_dir, docs = pathlib.Path(argv[1]), pathlib.Path(argv[2]), argv[3:]
    out_dir.mkdir(parents=True, exist_ok=True)
    includes = []
    namespaces = []
    programs = {}
    try:
        for doc in docs:
            path = source_dir / doc
            stem = re.sub(r"[^a-z0-9]+", "_", pathlib.Path(doc).stem.lower())
            decls, functions = [], []
            for kind, name, first, body in blocks_of(doc, path.read_text()):
                located = [f'#line {first} "{doc}"'] + body
                if kind == "program":
                    if name in programs:
                        raise DocError(f"{doc}:{first - 1}: a program named '{name}' already exists")
                    programs[name] = "\n".join(located) + "\n"
                    continue
                block_includes, code = split_includes(located)
                includes += block_includes
                if kind == "declarations":
                    decls.append("\n".join(code))
                elif kind == "statements":
                    functions.append(["\n".join(code)])
                else:  # continued
                    if not functions:
                        raise DocError(f"{doc}:{first - 1}: 'continued' follows no statements block")
                    functions[-1].append("\n".join(code))
            if not decls and not functions:
                continue
            ns = [f"// {doc}", f"namespace doc_{stem} {{", "using namespace doc_prelude;", ""]
            ns += decls
            for n, parts in enumerate(functions):
                ns += [
                    f"[[maybe_unused]] int statements_{n}([[maybe_unused]] distcache::config& cfg,",
                    "    [[maybe_unused]] const std::shared_ptr<doc_prelude::user_database>& db,",
                    "    [[maybe_unused]] doc_prelude::cache_type& cache) {",
                    "  {  // a scope of its own: the block may redeclare the parameters",
                ]
                ns += parts
                ns += ["  }", "  return 0;", "}"]
            ns += [f"}}  // namespace doc_{stem}", ""]
            namespaces.append("\n".join(ns))
    except DocError as e:
        print(f"extract.py: {e}", file=sys.stderr)
        return 1

    unique_includes = list(dict.fromkeys(includes))
    snippets = "\n".join([
        "// Generated by tests/docs/extract.py from README.md and docs/: do not edit.",
        '#include "docs/prelude.hpp"',
        *unique_includes,
        "",
        *namespaces,
    ])
    write_if_changed(out_dir / "doc_snippets.cpp", snippets)
    for name, text in programs.items():
        write_if_changed(out_dir / f"doc_program_{name}.cpp",
                         "// Generated by tests/docs/extract.py: do not edit.\n" + text)
    write_if_changed(out_dir / "programs.txt", "".join(f"{n}\n" for n in programs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
