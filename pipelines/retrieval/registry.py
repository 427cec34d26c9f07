"""Which retrievers exist: name -> how to fit and load it. Adding one is a module with a `RetrieverSpec`
and one `register` line here; the union, the ranker's training and the evaluation pick it up by name."""

from __future__ import annotations

from pipelines.retrieval.retriever import RetrieverSpec

RETRIEVERS: dict[str, RetrieverSpec] = {}
DEFAULT_RETRIEVERS = ("tiger", "sasrec")  # tonight's union; popularity backs users the others cannot serve


def register(spec: RetrieverSpec) -> RetrieverSpec:
    RETRIEVERS[spec.name] = spec
    return spec


def retriever_spec(name: str) -> RetrieverSpec:
    try:
        return RETRIEVERS[name]
    except KeyError:
        raise KeyError(f"unknown retriever {name!r}; registered: {sorted(RETRIEVERS)}") from None


def _register_builtins() -> None:
    from pipelines.retrieval import popularity, sasrec, serving, training

    register(RetrieverSpec("tiger", training.fit_tiger, serving.load_tiger_retriever,
                           "TIGER: generative retrieval over semantic IDs (reaches items with no events)"))
    register(sasrec.SPEC)
    register(popularity.SPEC)


_register_builtins()
