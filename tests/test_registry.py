import pytest

from gridgraph.registry import Registry


def build(num_classes, hidden: int = 3, *, depth: int = 2):
    return (num_classes, hidden, depth)


def anything(num_classes, **kwargs):
    return kwargs


def test_register_get_build_and_listing():
    reg = Registry("widget", fixed=("num_classes",))
    reg.register("b", build)

    @reg.register("a")
    def other(num_classes):
        return num_classes

    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and "a" in reg and len(reg) == 2
    assert reg.build("b", 4, hidden=5) == (4, 5, 2)
    assert reg.parameters("b") == ["hidden", "depth"]
    assert reg.required("b") == []
    bare = Registry("widget")
    bare.register("b", build)
    assert bare.required("b") == ["num_classes"]
    with pytest.raises(ValueError, match="unknown widget 'c'; known: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", build)
    reg.register("a", build, overwrite=True)
    assert reg.get("a") is build
    with pytest.raises(TypeError, match="callable"):
        reg.register("x", 3)
    reg.remove("a")
    assert reg.names() == ["b"]


def test_check_kwargs_names_the_key():
    reg = Registry("widget", fixed=("num_classes",))
    reg.register("b", build)
    reg.register("any", anything)
    reg.check_kwargs("b", {"hidden": 1, "depth": 2}, "g.kwargs")
    with pytest.raises(ValueError, match=r"g\.kwargs\.num_classes: widget 'b' takes no argument"):
        reg.check_kwargs("b", {"num_classes": 1}, "g.kwargs")
    reg.check_kwargs("any", {"whatever": 1}, "g.kwargs")  # **kwargs accepts anything
    assert reg.parameters("any") is None


def test_entries_carry_their_metadata():
    reg = Registry("widget", fixed=("num_classes",))
    reg.register("b", build, meta={"reads": "image"})
    reg.register("any", anything)
    assert reg.metadata("b") == {"reads": "image"} and reg.metadata("any") == {}
    reg.metadata("b")["reads"] = "changed"  # a copy
    assert reg.metadata("b") == {"reads": "image"}
    reg.register("b", build)  # the same builder again keeps its metadata
    assert reg.metadata("b") == {"reads": "image"}
    reg.register("b", anything, overwrite=True)  # another builder has its own
    assert reg.metadata("b") == {}
    reg.remove("b")
    with pytest.raises(ValueError, match="unknown widget 'b'"):
        reg.metadata("b")
