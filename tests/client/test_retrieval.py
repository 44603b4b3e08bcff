"""Retrieval through the Python client against `microtome serve`: similar annotations
of a region or an annotation, and suggested terms."""

from __future__ import annotations

from typing import Any

from shapely.geometry import box

from tests.client.conftest import unique
from tests.retrieval.labelled_tiles import LABELS, TILE


def _tile(gx: int, gy: int) -> Any:
    return box(gx * TILE, gy * TILE, (gx + 1) * TILE, (gy + 1) * TILE)


def test_similar_and_suggest_terms(client: Any, ready_images: dict[str, int]) -> None:
    project = client.create_project(unique("retrieval"))
    image = client.image(project.add_image(ready_images["CMU-1-Small-Region.svs"]).id)
    terms = {label: project.create_term(label) for label in LABELS}
    labels: dict[int, str] = {}
    for label, cells in LABELS.items():
        ids = image.create_annotations([_tile(*c) for c in cells],
                                       terms=[terms[label].id], project=project.id)
        labels.update(dict.fromkeys(ids, label))
    query = next(a for a, lab in labels.items() if lab == "background")
    items = client.similar(query, scope="project", k=3)
    assert len(items) == 3 and query not in {i["annotation_id"] for i in items}
    assert {labels[i["annotation_id"]] for i in items} == {"background"}
    # A drawn region (shapely), not an annotation: glass.
    items = client.similar(image=image, geometry=_tile(10, 2), scope="project", k=3)
    assert {labels[i["annotation_id"]] for i in items} == {"background"}
    suggested = client.suggest_terms(image=image.id, geometry=_tile(8, 12), scope="project",
                                     k=3)
    assert suggested[0]["name"] == "stroma" and suggested[0]["term_id"] == terms["stroma"].id
