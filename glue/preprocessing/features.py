"""The feature pipeline (what the SparkML Serving container runs), what each column type adds to it,
and what it learns from the training split. Features in file order.

Categorical: one StringIndexer per feature (MLeap 0.20.0 refuses
multi-column indexers) with labels fixed to the spec's value order, or for a
learned column to the training split's values by frequency (ties by text);
OneHotEncoder; VectorAssembler -> `features`. Unseen values: the indexers use
handleInvalid="keep", which maps any value not in the labels to one extra index;
the encoder has dropLast=True, and since "keep" makes that extra index the last
category, it is the one dropped: a known value is one 1 in its feature's block
and an unseen (or missing) value is an all-zero block, a valid vector (XGBoost
reads it as "none of the known values") instead of an HTTP 4xx. A learned
column with more values than its max_categories keeps the rarer ones at the end
of the labels and folds them into one "other" slot with a Bucketizer on the
index (Spark has no op mapping many strings to one index; Bucketizer is one
MLeap 0.20.0 loads), the never-seen index still last and dropped. Numeric: an
Imputer whose surrogate (mean or median) comes from the training split; the
serving schema types it as a string, so an empty field reaches the Imputer as
null (preprocessing.bundle.sparkml_schemas). The layout is the manifest's `feature_slots`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from dataset_spec import ColumnSpec, Layout, as_layout
from dataset_spec.dates import DATE_PARTS
from dataset_spec.serving import FEATURES_COL
from dataset_spec.spec import IMPUTE_STRATEGIES
from preprocessing.dates import part_col, part_cols, twin_parts
from preprocessing.errors import InvalidInputData
from preprocessing.lines import index_name


def index_col(name: str) -> str:
    return f"{name}__index"


def bucket_col(name: str) -> str:
    return f"{name}__bucket"


def imputed_col(name: str) -> str:
    return f"{name}__imputed"


def onehot_col(name: str) -> str:
    return f"{name}__onehot"


OTHER_SLOT = "(other)"

# A learned categorical column keeps every value seen in training in its bundle (so that a rare
# value maps to "other" and a never-seen one to an all-zero block); beyond this it is an identifier
# or free text, not a category.
MAX_LEARNED_VALUES = 10_000


@dataclass(frozen=True)
class Learned:
    """What the training split taught the preprocess pipeline (the manifest's `learned`)."""

    # learned categorical feature -> (values with a slot of their own, the rarer values sharing "other")
    categories: dict = field(default_factory=dict)
    # numeric feature -> the value a missing cell becomes
    surrogates: dict = field(default_factory=dict)

    def to_json(self, layout: Layout) -> dict:
        out = {}
        for c in layout.features:
            if c.name in self.categories:
                values, other = self.categories[c.name]
                out[c.name] = {"values": list(values), "other": list(other)}
            elif c.name in self.surrogates:
                out[c.name] = {"impute": c.impute, "surrogate": self.surrogates[c.name]}
            elif c.type == "date":
                out[c.name] = {"impute": c.impute,
                               "surrogates": {part: self.surrogates[part_col(c.name, part)] for part in DATE_PARTS}}
        return out

    @classmethod
    def from_json(cls, document: dict | None) -> "Learned":
        document = document or {}
        surrogates = {n: float(d["surrogate"]) for n, d in document.items() if "surrogate" in d}
        for n, d in document.items():
            surrogates.update({part_col(n, part): float(v) for part, v in (d.get("surrogates") or {}).items()})
        return cls({n: (list(d["values"]), list(d["other"])) for n, d in document.items() if "values" in d},
                   surrogates)


def indexer_labels(column: ColumnSpec, learned: Learned) -> tuple[list[str], int]:
    """A categorical feature's StringIndexer labels, and how many of them have a slot of their own
    (the rest share the "other" slot)."""
    if column.values is not None:
        return list(column.values), len(column.values)
    values, other = learned.categories[column.name]
    return list(values) + list(other), len(values)


def other_splits(own: int, total: int) -> list[float]:
    """Bucketizer splits over StringIndexer positions: each of the first `own` positions its own
    bucket, positions own..total-1 one "other" bucket, and position `total` (the indexer's "keep"
    index for a value never seen in training) the last bucket, which the encoder drops."""
    return [i - 0.5 for i in range(own + 1)] + [total - 0.5, total + 0.5]


def feature_slots(layout: Layout, learned: Learned) -> list[str]:
    """What each element of the feature vector holds, in order."""
    slots = []
    for c in layout.features:
        if c.type == "numeric":
            slots.append(c.name)
            continue
        if c.type == "date":
            slots.extend(f"{c.name}.{part}" for part in DATE_PARTS)
            continue
        labels, own = indexer_labels(c, learned)
        slots.extend(f"{c.name}={v}" for v in labels[:own])
        if own < len(labels):
            slots.append(f"{c.name}={OTHER_SLOT}")
    return slots


def build_preprocess_model(spark, spec, sample=None, learned: Learned | dict | None = None):
    """The serving feature pipeline, from the spec and what the training split taught (`learned`:
    a Learned or the manifest's `learned`; needed when the spec has numeric or learned columns).
    `sample` is not read (kept for callers of the all-categorical version).

    Categorical feature: StringIndexer (labels fixed: the spec's values, or the learned ones with the
    rarer values last), for a capped learned column a Bucketizer folding the rarer positions into one
    "other" bucket, then one-hot. Numeric feature: Imputer (the surrogate from the training split).
    VectorAssembler in the spec's feature order.
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import Bucketizer, Imputer, OneHotEncoder, StringIndexerModel, VectorAssembler
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    layout = as_layout(spec)
    learned = learned if isinstance(learned, Learned) else Learned.from_json(learned)
    features = layout.features
    stages, encoded, vector_inputs = [], {}, {}
    for c in features:
        if c.type != "categorical":
            continue
        labels, own = indexer_labels(c, learned)
        stages.append(StringIndexerModel.from_labels(labels, inputCol=c.name, outputCol=index_col(c.name),
                                                     handleInvalid="keep"))
        encoded[c.name] = index_col(c.name)
        if own < len(labels):
            stages.append(Bucketizer(splits=other_splits(own, len(labels)), inputCol=index_col(c.name),
                                     outputCol=bucket_col(c.name)))
            encoded[c.name] = bucket_col(c.name)
    for strategy in IMPUTE_STRATEGIES:
        group = [name for c in features if c.type in ("numeric", "date") and c.impute == strategy
                 for name in imputed_inputs(c)]
        if not group:
            continue
        # Spark's ImputerModel has no constructor from values: fitting it on one row holding the
        # surrogates gives exactly those values (the mean or the median of one number is that number).
        one_row = spark.createDataFrame([tuple(float(learned.surrogates[name]) for name in group)],
                                        StructType([StructField(name, DoubleType()) for name in group]))
        imputer = Imputer(strategy=strategy, inputCols=group, outputCols=[imputed_col(name) for name in group])
        stages.append(imputer.fit(one_row))
    for c in features:
        if c.type in ("numeric", "date"):
            vector_inputs[c.name] = [imputed_col(name) for name in imputed_inputs(c)]
        else:
            vector_inputs[c.name] = [onehot_col(c.name)]
    if encoded:
        names = list(encoded)
        stages.append(OneHotEncoder(inputCols=[encoded[n] for n in names], outputCols=[onehot_col(n) for n in names],
                                    dropLast=True, handleInvalid="error"))
    stages.append(VectorAssembler(inputCols=[name for c in features for name in vector_inputs[c.name]],
                                  outputCol=FEATURES_COL))
    # OneHotEncoder's fit reads only its input columns' metadata: an empty frame is enough. A date
    # feature's pipeline input is its parts (preprocessing.dates builds them in the bundle).
    empty = spark.createDataFrame([], StructType(
        [StructField(name, DoubleType()) for c in features if c.type in ("numeric", "date") for name in imputed_inputs(c)]
        + [StructField(c.name, StringType()) for c in features if c.type == "categorical"]))
    return Pipeline(stages=stages).fit(empty)


def imputed_inputs(column: ColumnSpec) -> list[str]:
    """The columns the Imputer fills in for a numeric feature (itself) or a date (its parts)."""
    return part_cols(column.name) if column.type == "date" else [column.name]


def fit_learned(spark, layout: Layout, train, pool, input_uri: str) -> Learned:
    """Learned categories and imputer surrogates from the training split (`train`: its rows with the
    cached values). One aggregation per kind, run at once; nothing when the spec lists every value
    and has no numeric feature."""
    from pyspark.ml.feature import Imputer
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.utils import IllegalArgumentException

    learned_columns = [c for c in layout.features if c.learned]
    numeric = [c for c in layout.features if c.type in ("numeric", "date")]

    def categories():
        if not learned_columns:
            return {}
        pairs = F.array(*[F.struct(F.lit(i).alias("c"), F.col(index_name(c.name)).alias("v"))
                          for i, c in enumerate(learned_columns)])
        counts = (train.select(F.explode(pairs).alias("e")).select("e.c", "e.v").filter(F.col("v").isNotNull())
                  .groupBy("c", "v").agg(F.count(F.lit(1)).alias("n")))
        ranked = counts.select(
            "c", "v", "n", F.count(F.lit(1)).over(Window.partitionBy("c")).alias("distinct"),
            F.row_number().over(Window.partitionBy("c").orderBy(F.desc("n"), "v")).alias("rank"))
        rows = ranked.filter(F.col("rank") <= MAX_LEARNED_VALUES + 1).collect()
        found = {}
        for r in sorted(rows, key=lambda r: (r.c, r.rank)):
            found.setdefault(r.c, []).append((r.v, r.distinct))
        result = {}
        for i, c in enumerate(learned_columns):
            seen = found.get(i, [])
            if not seen:
                raise InvalidInputData(
                    f"Input data rejected, nothing was trained ({input_uri}): column {c.name!r} has no value in the "
                    "training split (every cell is missing): nothing to learn its categories from.",
                    [{"kind": "learned_values", "count": 0, "lines": [], "message": f"{c.name}: no values"}])
            if seen[0][1] > MAX_LEARNED_VALUES:
                raise InvalidInputData(
                    f"Input data rejected, nothing was trained ({input_uri}): column {c.name!r} has {seen[0][1]} "
                    f"distinct values in the training split, more than the {MAX_LEARNED_VALUES} a learned "
                    "categorical column may have (it looks like an identifier or free text): declare it "
                    "\"type\": \"ignore\", or list the values that matter.",
                    [{"kind": "learned_values", "count": seen[0][1], "lines": [], "message": f"{c.name}: too many"}])
            values = [v for v, _ in seen]
            result[c.name] = (values[:c.max_categories], values[c.max_categories:])
        return result

    def surrogates(strategy: str):
        # name -> what the Imputer reads: a number, or a date's part as the bundle computes it.
        group = {}
        for c in numeric:
            if c.impute != strategy:
                continue
            if c.type == "date":
                group.update(zip(part_cols(c.name), twin_parts(c.name, c.date_format, F.col(index_name(c.name)))))
            else:
                group[c.name] = F.col(index_name(c.name))
        if not group:
            return {}
        imputer = Imputer(strategy=strategy, inputCols=list(group), outputCols=[imputed_col(n) for n in group])
        try:
            [row] = imputer.fit(train.select(*[e.alias(n) for n, e in group.items()])).surrogateDF.collect()
        except IllegalArgumentException as exc:
            raise InvalidInputData(
                f"Input data rejected, nothing was trained ({input_uri}): a numeric or date column has no value in "
                f"the training split, nothing to impute from ({exc}).",
                [{"kind": "impute", "count": 0, "lines": [], "message": str(exc)}]) from None
        return {n: float(row[n]) for n in group}

    from concurrent.futures import wait

    # One Spark job each, at once: on small inputs most of a job's time is the driver planning it.
    jobs = [pool.submit(categories)] + [pool.submit(surrogates, strategy) for strategy in IMPUTE_STRATEGIES]
    wait(jobs)
    found = {}
    for job in jobs[1:]:
        found.update(job.result())
    return Learned(jobs[0].result(), found)


# Up to this many learned values, a learned column's position is a chain of comparisons like a
# listed column's (value_index); beyond it a broadcast hash join, whose cost does not grow with the list.
JOIN_ABOVE_VALUES = 64


def learned_positions(spark, frame, layout: Layout, learned: Learned):
    """`frame` with the StringIndexer position (null: never seen in training) of each learned
    categorical feature with more than JOIN_ABOVE_VALUES values as `<name>__position`, by a
    broadcast join with the (value, position) list."""
    from pyspark.sql import functions as F

    for c in layout.features:
        if not c.learned or len(indexer_labels(c, learned)[0]) <= JOIN_ABOVE_VALUES:
            continue
        labels, _ = indexer_labels(c, learned)
        key = f"{c.name}__key"
        lookup = spark.createDataFrame([(v, i) for i, v in enumerate(labels)], f"`{key}` string, `{c.name}__position` int")
        frame = frame.join(F.broadcast(lookup), F.col(index_name(c.name)) == F.col(key), "left").drop(key)
    return frame
