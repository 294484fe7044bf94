"""Parses every Swift file of the package (generated and hand-written) and of
ios-demo with
tree-sitter-swift and fails on any syntax error: the check this Linux machine
allows, as no Swift toolchain can be installed here.

The grammar does not know two constructs uniffi emits, both valid Swift:
`@_documentation(...)` attributes, and a closure whose body is the empty
tuple, `{ () }`. They are rewritten to blanks / `{ }` of the same length
before parsing, so reported positions stay right."""

import pathlib
import re
import sys

import tree_sitter
import tree_sitter_swift

package = pathlib.Path(__file__).resolve().parent.parent
repo = package.parent.parent
root = repo
files = (
    sorted(package.glob("Sources/**/*.swift"))
    + sorted(package.glob("Tests/**/*.swift"))
    + [package / "Package.swift"]
    + sorted((repo / "ios-demo").glob("**/*.swift"))
)
if not any(p.name == "fedmr_ffi.swift" for p in files):
    sys.exit("generated Sources/Fedmr/fedmr_ffi.swift missing: run bindings/generate.sh first")

parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
documentation = re.compile(r"@_documentation\([^)]*\)")


def errors(node, found):
    if node.type == "ERROR" or node.is_missing:
        found.append(node)
    for child in node.children:
        errors(child, found)
    return found


failed = 0
for path in files:
    text = documentation.sub(lambda m: " " * len(m.group(0)), path.read_text())
    text = text.replace("{ () }", "{    }")
    tree = parser.parse(text.encode())
    found = errors(tree.root_node, [])
    for node in found[:5]:
        line, col = node.start_point
        print(f"{path.relative_to(root)}:{line + 1}:{col + 1}: syntax error near {text.splitlines()[line].strip()[:80]!r}")
    failed += bool(found)
    print(f"{'FAIL' if found else 'parsed'} {path.relative_to(root)}")
sys.exit(1 if failed else 0)
