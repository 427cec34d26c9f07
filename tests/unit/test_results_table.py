"""`make results`: the README's table is exactly what benchmarks/results/*.json say."""

from benchmarks.results_table import END, START, main, table, with_table


def test_the_readme_table_is_regenerated_with_no_diff():
    assert main(["--check"]) == 0


def test_the_table_goes_between_the_markers_only():
    readme = f"intro\n{START}\nold\n{END}\noutro\n"
    updated = with_table(readme, "| new |")
    assert updated == f"intro\n{START}\n| new |\n{END}\noutro\n"
    assert table().splitlines()[0].startswith("| benchmark | figure | value | device | date |")
