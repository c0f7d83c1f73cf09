"""A spec's `contains` selector picks a cell by its code, never by a comment or a string that holds the
same text (graders/sandbox/cellselect.py). Red team atk7 a4: a decoy cell with
`# for epoch in range(n_epochs):` above the real training loop became the training cell, and the loop
a reader sees never ran."""

from __future__ import annotations

import io
import tokenize

import pytest

from dldiy.graders.sandbox.cellselect import classes, selects, _lexed

LOOP = {"contains": "for epoch in range(n_epochs):"}


@pytest.mark.parametrize("source, picked", [
    ("for epoch in range(n_epochs):\n    pass\n", True),
    ("model = []  # the loop\nfor epoch in range(n_epochs):  # train\n    pass\n", True),
    ("!wget -q x -O data/blobs.csv\nfor epoch in range(n_epochs):\n    pass\n", True),  # a magic: the rest tokenizes
    ("  x = 1\n y = 2\nfor epoch in range(n_epochs):\n", True),  # does not tokenize: the lexer classes it
    ("for epoch in range(n_epochs):\n    f(x,\n", True),  # an unfinished bracket: the lexer again
    ("# for epoch in range(n_epochs):\nmodel = [Oracle(X_train, y_train)]\n", False),  # the atk7 decoy
    ("x = 1  # for epoch in range(n_epochs):\n", False),
    ("s = 'for epoch in range(n_epochs):'\n", False),
    ('s = """\nfor epoch in range(n_epochs):\n"""\n', False),
    ('"""for epoch in range(n_epochs):"""\nmodel = 1\n', False),
    ("s = f'{a}for epoch in range(n_epochs): {b}'\n", False),
    ("s = rb'for epoch in range(n_epochs):'\n", False),
    ("s = 'for epoch in range(n_epochs):\nmodel = 1\n", False),  # an unterminated string: still a string
    ("s = '''\nfor epoch in range(n_epochs):\n", False),  # an unterminated triple-quoted one
    ("s = '# x'\nfor epoch in range(n_epochs):\n", True),  # a '#' inside a string opens no comment
    ("%%time\nfor epoch in range(n_epochs):\n    pass\n", True),  # a cell magic: a command, as typed
    ("def train():\n    for epoch in range(n_epochs):\n        pass\n", True),  # part of a line, as before
    ("", False),
])
def test_contains_matches_the_code_of_a_cell_only(source, picked):
    assert selects(LOOP, source, set()) is picked


@pytest.mark.parametrize("selector, source, picked", [
    # a selector holding a string literal matches that very literal, not the same text inside another string
    ('np.loadtxt("data/blobs.csv"', 'data = np.loadtxt("data/blobs.csv", delimiter=",")\n', True),
    ('np.loadtxt("data/blobs.csv"', "s = 'data = np.loadtxt(\"data/blobs.csv\")'\n", False),
    ('"data/blobs.csv"', 'data = np.loadtxt("data/blobs.csv")\n', True),
    ('"data/blobs.csv"', "s = '\"data/blobs.csv\"'\n", False),
    # a selector that is a comment matches that comment (an instructor's marker line), not one in a string
    ("# train here", "# train here\nfor x in y:\n    pass\n", True),
    ("# train here", "s = '# train here'\n", False),
    ("# train here", "# # train here\n", False),  # the text of another comment, not a comment of its own
    # a shell line is a command: an instructor may select the data cell by its download
    ("wget", "!wget -q https://example.org/blobs.csv -O data/blobs.csv\ndata = 1\n", True),
    ("np.loadtxt", "!wget x\ndata = np.loadtxt('data/blobs.csv')\n", True),
    ("blobs.csv", "data = np.loadtxt('data/blobs.csv')\n", False),  # text only in a string: write its quotes
])
def test_a_selector_matches_the_same_kind_of_text_it_holds(selector, source, picked):
    assert selects({"contains": selector}, source, set()) is picked


def test_tags_select_as_before():
    assert selects({"tag": "train"}, "# anything", {"train"}) and not selects({"tag": "train"}, "x", {"data"})


@pytest.mark.parametrize("source", [
    "x = 'a' + \"b\"  # c\ny = '''d\ne''' + rb'f\\'g' + f\"{h!r}\"\n",
    "def f():\n    '''doc # not a comment'''\n    return \"# not one either\"  # but this\n",
    "a = [1,\n     2]  # x\nb = u'\\n' # y\n",
])
def test_the_lexer_classes_what_the_tokenizer_classes(source):
    """The fallback (for cells the tokenizer refuses, and for selectors) agrees with tokenize where both work."""
    list(tokenize.generate_tokens(io.StringIO(source).readline))  # (it does tokenize)
    assert classes(source) == _lexed(source)
