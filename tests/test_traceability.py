"""The map between spec and tests is total: every spec ID is tested, every marker exists."""

from __future__ import annotations

from kata import spec as specs


def test_spec_files_parse_and_ids_are_unique():
    seen: dict[str, str] = {}
    for topic in specs.topics():
        assert topic.items, f"{topic.path.name} defines no spec item"
        assert (specs.ROOT / "solutions" / f"{topic.module}.py").exists(), (
            f"{topic.path.name}: solutions/{topic.module}.py is missing"
        )
        assert (specs.ROOT / topic.tests).exists(), f"{topic.path.name}: {topic.tests} is missing"
        for item in topic.items:
            assert specs.ID_RE.match(item.id)
            assert item.id not in seen, f"{item.id} is defined in {seen.get(item.id)} and {topic.path.name}"
            seen[item.id] = topic.path.name
            assert item.title, f"{item.id} has no one-line behaviour in its heading"
            assert item.hint, f"{item.id} has no '- **Hint:**' line"


def test_every_spec_id_has_a_test():
    tested = set().union(*specs.markers_in_tests().values())
    untested = [i for i in specs.items() if i not in tested]
    assert not untested, f"spec IDs with no test: {', '.join(untested)}"


def test_every_marker_names_a_spec_id():
    known = specs.items()
    for path, ids in specs.markers_in_tests().items():
        unknown = sorted(ids - set(known))
        assert not unknown, f"{path} marks IDs that no spec file defines: {', '.join(unknown)}"


def test_each_topic_tests_only_its_own_ids():
    by_file = specs.markers_in_tests()
    for topic in specs.topics():
        name = topic.tests.rsplit("/", 1)[-1]
        foreign = sorted(by_file.get(name, set()) - set(topic.ids))
        assert not foreign, f"{name} marks IDs of other topics: {', '.join(foreign)}"
