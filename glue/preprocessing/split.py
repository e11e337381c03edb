"""The split: 70% train, 15% validation, 15% test, stratified by label with exact per-label counts
(regression: one stratum). The car data's rare classes (good: 69, vgood: 65 rows) still get about
10 rows each in validation (early stopping) and in the QA test set, which 80/10/10 would halve.

Within each label, rows are ranked by xxhash64(seed, the line's index in its file), never by the
row's content: a split by content sent identical rows to one split as a block, and rows with the
same features but different labels to different splits by label (a passenger table's survivors of
one feature pattern all went to test). So within any repeated feature pattern each split's label mix
is the whole's within sampling error, and which rows go where depends on the seed and the line order
alone (not on file paths, line endings, quoting or partitioning). Ranking does
not sort the data: rows are hashed into SPLIT_BUCKETS buckets per label (while validating), counted,
and only the few buckets where a cut falls are ranked (assign_split).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dataset_spec import Layout
from preprocessing.lines import index_name

if TYPE_CHECKING:
    from preprocessing.validate import ValidInput

SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
# Rows are hashed into this many buckets per label for the split (see assign_split).
SPLIT_BUCKETS = 1024


def split_counts(label_counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Exact per-label sizes: test and validation rounded from their fractions, train gets the rest."""
    sizes = {}
    for label, n in label_counts.items():
        test = int(n * SPLIT_FRACTIONS["test"] + 0.5)
        validation = int(n * SPLIT_FRACTIONS["validation"] + 0.5)
        sizes[label] = {"test": test, "validation": validation, "train": n - test - validation}
    return sizes


def boundary_buckets(sizes: dict[str, dict[str, int]], bucket_counts: dict[tuple[str, int], int]) -> dict[str, dict]:
    """Per label: the buckets holding the last test row and the last validation row, and the
    rank each boundary bucket starts after. Rows in other buckets need no ranking at all."""
    plan = {}
    for label, size in sizes.items():
        ends = {"test": size["test"], "validation": size["test"] + size["validation"]}
        found = {"test": -1, "validation": -1}
        starts: dict[int, int] = {}
        seen = 0
        for bucket in sorted(b for (lab, b) in bucket_counts if lab == label):
            n = bucket_counts[(label, bucket)]
            for name, end in ends.items():
                if found[name] < 0 and seen < end <= seen + n:
                    found[name] = bucket
                    starts[bucket] = seen
            seen += n
        plan[label] = {"test_bucket": found["test"], "validation_bucket": found["validation"],
                       "test_end": ends["test"], "validation_end": ends["validation"], "starts": starts}
    return plan


def assign_split(valid: ValidInput, layout: Layout, sizes: dict[str, dict[str, int]]):
    """The used columns (text and cached value), `stratum` and `split`.

    Rank order within a stratum (a label value; regression: one stratum) is (bucket, split_hash,
    file, pos), bucket = split_hash mod SPLIT_BUCKETS. A row's split follows from its bucket alone, except in the few boundary
    buckets where a cut falls: only those rows are ranked, so no shuffle of the whole data
    set and no task holding a whole label (a window over each label would be both).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [c.name for c in layout.used]
    label, bucket = F.col("stratum"), F.col("bucket")
    plan = boundary_buckets(sizes, valid.bucket_counts)

    def per_label(value_of):
        expression = None
        for value, entry in plan.items():
            expression = (F.when(label == value, F.lit(value_of(entry))) if expression is None
                          else expression.when(label == value, F.lit(value_of(entry))))
        return expression

    is_boundary = F.lit(False)
    for value, entry in plan.items():
        if entry["starts"]:
            is_boundary = is_boundary | ((label == value) & bucket.isin(list(entry["starts"])))
    by_bucket = (F.when(bucket < per_label(lambda e: e["test_bucket"]), "test")
                 .when(bucket < per_label(lambda e: e["validation_bucket"]), "validation").otherwise("train"))
    carried = [*names, *[index_name(name) for name in names], "stratum"]
    plain = valid.rows.filter(~is_boundary).select(*carried, by_bucket.alias("split"))

    start = F.lit(0)
    for value, entry in plan.items():
        for b, rank_start in entry["starts"].items():
            start = F.when((label == value) & (bucket == b), F.lit(rank_start)).otherwise(start)
    rank = start + F.row_number().over(Window.partitionBy(label, bucket).orderBy("split_hash", "file", "pos"))
    by_rank = (F.when(rank <= per_label(lambda e: e["test_end"]), "test")
               .when(rank <= per_label(lambda e: e["validation_end"]), "validation").otherwise("train"))
    ranked = valid.rows.filter(is_boundary).select(*carried, by_rank.alias("split"))
    return plain.unionByName(ranked)
