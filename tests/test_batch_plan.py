"""Pure planning of AWS Batch runs: AWS's limits, and which child takes which pairs."""

from __future__ import annotations

import itertools

import pytest

from stac_coh.batch import (
    ARRAY_INDEX_ENV,
    ENV_INDEX_OFFSET,
    ENV_PAIRS_PER_JOB,
    MAX_ARRAY_SIZE,
    MAX_DEPENDENCIES,
    child_index,
    child_pairs,
    job_tags,
    new_run_id,
    plan_run,
    share_from_env,
    validate_job_name,
    validate_run_id,
)
from stac_coh.errors import InputError


def _shares(n_pairs: int, pairs_per_job: int, max_array_size: int = MAX_ARRAY_SIZE) -> list[int]:
    """Every pair index every child of every planned job would process, in order."""
    plan = plan_run(n_pairs, pairs_per_job, "r1", max_array_size=max_array_size)
    taken: list[int] = []
    for job in plan.jobs:
        for index in range(job.size) if job.is_array else [None]:
            env = {ENV_INDEX_OFFSET: str(job.index_offset), ENV_PAIRS_PER_JOB: str(pairs_per_job)}
            if index is not None:
                env[ARRAY_INDEX_ENV] = str(index)
            taken.extend(share_from_env(env, n_pairs))
    return taken


@pytest.mark.parametrize(
    ("n_pairs", "ppj", "max_size"),
    [
        (1, 1, MAX_ARRAY_SIZE),
        (2, 1, MAX_ARRAY_SIZE),
        (17, 4, MAX_ARRAY_SIZE),
        (10, 1, 3),
        (23, 2, 5),
    ],
)
def test_children_cover_every_pair_exactly_once(n_pairs: int, ppj: int, max_size: int) -> None:
    assert _shares(n_pairs, ppj, max_size) == list(range(n_pairs))


def test_one_child_is_a_plain_job() -> None:
    for n_pairs, ppj in [(1, 1), (3, 3), (3, 50)]:
        plan = plan_run(n_pairs, ppj, "r1")
        assert [(j.size, j.is_array, j.index_offset) for j in plan.jobs] == [(1, False, 0)]


def test_array_sizes_stay_within_aws_limits() -> None:
    plan = plan_run(10_000, 1, "r1")
    assert [j.size for j in plan.jobs] == [10_000]
    plan = plan_run(10_001, 1, "r1")
    assert len(plan.jobs) == 2
    assert all(2 <= j.size <= MAX_ARRAY_SIZE for j in plan.jobs)


def test_20001_children_make_three_array_jobs() -> None:
    plan = plan_run(20_001, 1, "r1")
    assert plan.children == 20_001
    assert len(plan.jobs) == 3
    assert all(j.is_array and 2 <= j.size <= MAX_ARRAY_SIZE for j in plan.jobs)
    offsets = [j.index_offset for j in plan.jobs]
    assert offsets == [0, plan.jobs[0].size, plan.jobs[0].size + plan.jobs[1].size]
    assert len({j.name for j in plan.jobs}) == 3
    assert _shares(20_001, 1) == list(range(20_001))


def test_pairs_per_job_reduces_children() -> None:
    plan = plan_run(20_001, 3, "r1")
    assert plan.children == 6_667
    assert [j.size for j in plan.jobs] == [6_667]


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4"])
def test_invalid_pairs_per_job_is_rejected(bad: object) -> None:
    with pytest.raises(InputError, match="pairs-per-job"):
        plan_run(10, bad, "r1")  # type: ignore[arg-type]


def test_more_array_jobs_than_dependencies_is_rejected() -> None:
    n_pairs = MAX_DEPENDENCIES * MAX_ARRAY_SIZE + 1
    with pytest.raises(InputError, match="--pairs-per-job 2 or more"):
        plan_run(n_pairs, 1, "r1")
    assert len(plan_run(n_pairs, 2, "r1").jobs) == 11


def test_empty_manifest_is_rejected() -> None:
    with pytest.raises(InputError, match="no pairs"):
        plan_run(0, 1, "r1")


@pytest.mark.parametrize("size", [1, 10_001])
def test_max_array_size_outside_aws_range_is_rejected(size: int) -> None:
    with pytest.raises(InputError, match="max_array_size"):
        plan_run(10, 1, "r1", max_array_size=size)


def test_job_names_follow_aws_rules() -> None:
    assert validate_job_name("a" * 128)
    for bad in ["a" * 129, "has space", "-leading-hyphen", "dot.ted", ""]:
        with pytest.raises(InputError, match="Job name"):
            validate_job_name(bad)
    longest = plan_run(30_000, 1, "x" * 64)
    assert all(len(j.name) <= 128 for j in longest.jobs)
    assert len(longest.finalize_name) <= 128


def test_run_ids_are_checked_and_fresh_ones_valid() -> None:
    for bad in ["x" * 65, "under_score", "-x", "a/b"]:
        with pytest.raises(InputError, match="Run id"):
            validate_run_id(bad)
    ids = {new_run_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(validate_run_id(i) for i in ids)


def test_share_of_a_plain_job_and_of_late_children() -> None:
    assert share_from_env({}, 5) == range(0, 1)
    assert share_from_env({ENV_PAIRS_PER_JOB: "4"}, 3) == range(0, 3)
    env = {ARRAY_INDEX_ENV: "3", ENV_INDEX_OFFSET: "4", ENV_PAIRS_PER_JOB: "5"}
    assert share_from_env(env, 100) == range(35, 40)
    assert share_from_env(env, 37) == range(35, 37)
    with pytest.raises(InputError, match="no pairs"):
        share_from_env(env, 35)
    with pytest.raises(InputError, match="AWS_BATCH_JOB_ARRAY_INDEX"):
        share_from_env({ARRAY_INDEX_ENV: "three"}, 10)
    with pytest.raises(InputError, match="negative"):
        child_index(-1, 0)
    assert child_index(None, 7) == 7
    assert child_pairs(2, 3, 8) == range(6, 8)


def test_tags_respect_aws_limits() -> None:
    tags = job_tags("r1", {"project": "bengaluru", "cost-centre": "eo/42"})
    assert tags["stac-coh:run-id"] == "r1"
    assert tags["project"] == "bengaluru"
    with pytest.raises(InputError, match="reserved"):
        job_tags("r1", {"aws:owner": "x"})
    with pytest.raises(InputError, match="Tag value"):
        job_tags("r1", {"k": "v" * 257})
    with pytest.raises(InputError, match="tags given"):
        job_tags("r1", {f"k{i}": "v" for i in itertools.islice(itertools.count(), 49)})
