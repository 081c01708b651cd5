"""Adapter composition blocks: Stack and Parallel, as in the reference library.

    Stack("lang", "task")       run "lang" then "task" at every adapter location
    Parallel("a", "b")          run the input through "a" and through "b" side by side;
                                the output holds one result per child (one per head)

A plain name is a one-adapter Stack. A Parallel's children may be names or
Stacks of names; a Stack's children are names (nesting a Parallel inside a
Stack is not supported here).
"""

from collections.abc import Sequence

from .errors import AdapterError


class AdapterCompositionBlock(Sequence):
    def __init__(self, *children):
        if not children:
            raise AdapterError(f"{type(self).__name__} needs at least one adapter")
        self.children = [_child(c) for c in children]

    def __getitem__(self, key):
        return self.children[key]

    def __len__(self):
        return len(self.children)

    def __eq__(self, other):
        return type(self) is type(other) and self.children == other.children

    def __hash__(self):
        return hash((type(self).__name__, tuple(self.children)))

    def __repr__(self):
        return f"{type(self).__name__}[{', '.join(map(str, self.children))}]"

    def first(self):
        child = self.children[0]
        return child if isinstance(child, str) else child.first()

    def last(self):
        child = self.children[-1]
        return child if isinstance(child, str) else child.last()

    def flatten(self):
        """The set of adapter names used anywhere in the block."""
        names = set()
        for child in self.children:
            names |= {child} if isinstance(child, str) else child.flatten()
        return names


class Stack(AdapterCompositionBlock):
    """Adapters applied one after the other, in order, at every adapter location."""


class Parallel(AdapterCompositionBlock):
    """The same input through several adapters (or Stacks) side by side; one output per child."""


def _child(child):
    if isinstance(child, (str, AdapterCompositionBlock)):
        return child
    raise AdapterError(f"an adapter composition holds adapter names or blocks, got {type(child).__name__}")


def parse_setup(setup):
    """A user's setup (None, a name, a list of names, Stack or Parallel) as None, Stack or Parallel."""
    if setup is None:
        return None
    if isinstance(setup, str):
        return Stack(setup)
    if isinstance(setup, (list, tuple)):
        return Stack(*setup) if setup else None
    if isinstance(setup, Stack):
        for child in setup:
            if not isinstance(child, str):
                raise AdapterError(f"{setup!r}: a Stack here holds adapter names only, not {type(child).__name__} blocks")
        return setup
    if isinstance(setup, Parallel):
        for child in setup:
            if isinstance(child, Parallel):
                raise AdapterError(f"{setup!r}: cannot nest Parallel inside Parallel")
            if isinstance(child, Stack):
                parse_setup(child)
        return setup
    if isinstance(setup, AdapterCompositionBlock):
        raise AdapterError(f"unsupported adapter composition {type(setup).__name__}; supported: Stack, Parallel")
    raise AdapterError(f"adapter setup must be a name, a list of names, Stack or Parallel, got {type(setup).__name__}")


def channels(setup):
    """The Stacks (lists of names) the encoder runs: one for a Stack, one per child for a Parallel."""
    if setup is None:
        return [[]]
    if isinstance(setup, Parallel):
        return [[c] if isinstance(c, str) else list(c) for c in setup]
    return [list(setup)]


def heads_from_setup(setup):
    """The head(s) a setup names, as the reference reads them: the last adapter, one per Parallel child."""
    if setup is None:
        return None
    if isinstance(setup, Parallel):
        return [c if isinstance(c, str) else c.last() for c in setup]
    return setup.last()
