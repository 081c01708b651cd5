"""What the command line prints on stderr: one-line errors, hints in its own terms, warnings once.

    one_line(exc)            # "ckpt: checkpoint does not match the model: missing 2 tensor(s): a (3,), b (4,)"
    head_hint("ner", model)  # which models here have the head, and `minidistil init` to make one
    show_warnings_once()     # a warnings.showwarning: "minidistil: warning: ...", each text once
"""

from __future__ import annotations

import sys

# Items of one list shown in a one-line error; the rest are counted ("and 12 more").
MAX_ITEMS = 5

# The CLI's commands that run a task head, and the pipeline task of each.
HEAD_COMMANDS = {
    "fill-mask": "fill-mask",
    "classify": "text-classification",
    "ner": "token-classification",
    "qa": "question-answering",
}


def _outline(lines):
    """Indented lines as a tree of [text, children]; a line's children are the more indented lines below it."""
    root = ["", []]
    stack = [(-1, root)]
    for line in lines:
        indent = len(line) - len(line.lstrip())
        while stack[-1][0] >= indent:
            stack.pop()
        node = [line.strip(), []]
        stack[-1][1][1].append(node)
        stack.append((indent, node))
    return root


def _render(node, max_items):
    text, children = node[0].rstrip(":"), node[1]
    if not children:
        return text
    if all(not child[1] for child in children):  # a plain list: the first few, then a count
        parts = [child[0] for child in children[:max_items]]
        if len(children) > max_items:
            parts.append(f"and {len(children) - max_items} more")
        inner = ", ".join(parts)
    else:
        inner = "; ".join(_render(child, max_items) for child in children)
    return f"{text}: {inner}" if text else inner


def one_line(message, max_items=MAX_ITEMS):
    """An error message on one line: indented lines below a line become its list, capped at max_items.

    Multi-line messages (a checkpoint's missing, unexpected and mis-shaped tensors) keep what they
    list instead of losing everything after the first line.
    """
    lines = [line for line in str(message).splitlines() if line.strip()]
    return _render(_outline(lines), max_items) if lines else ""


def _models_with_head(task):
    from .pipelines import local_models_for

    names = [name for name, _ in local_models_for(task)]
    if not names:
        return "no model in the Hugging Face cache or in an installed package has one"
    shown = ", ".join(names[:MAX_ITEMS]) + (f" and {len(names) - MAX_ITEMS} more" if len(names) > MAX_ITEMS else "")
    return f"models here with one: {shown} (pass --model NAME)"


def head_hint(command, source=None):
    """What to do when `command` has no model with its head: the models here that have one, and the
    `minidistil init` line that makes a checkpoint with an untrained head from `source`."""
    from_source = f" --from {source}" if source else ""
    return (
        f"{_models_with_head(HEAD_COMMANDS[command])}; to try `{command}` anyway, "
        f"`minidistil init DIR --task {command}{from_source}` writes a checkpoint with a random, untrained head "
        "(its predictions mean nothing), then pass --model DIR"
    )


def show_warnings_once(prefix="minidistil: warning: "):
    """A warnings.showwarning that prints each message once, on one line, without the source location.

    The default filter keys on the warning's source line, so a pipeline that checks its options
    both when built and when called warns twice; here the text decides.
    """
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = one_line(message)
        if text not in seen:
            seen.add(text)
            print(prefix + text, file=file or sys.stderr)

    return show
