"""Review, the annotation table, layers, bulk actions and exports through the client."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from microtome_client import Client, Conflict, Forbidden
from shapely.geometry import box

from tests.client.conftest import PASSWORD, LiveServer, unique


def test_review_table_and_exports(client: Any, live_server: LiveServer,
                                  ready_images: dict[str, int], tmp_path: Path) -> None:
    project = client.create_project(unique("review"))
    image = project.add_image(ready_images["CMU-1-Small-Region.svs"])
    tumour = project.create_term("tumour")
    names = {role: unique(role) for role in ("contributor", "reviewer")}
    for role, name in names.items():
        client.create_user(name, PASSWORD)
        project.add_member(name, role)
    assert project.set_requires_review(True)["requires_review"] is True
    with Client(live_server.url, username=names["contributor"], password=PASSWORD) as c, \
            Client(live_server.url, username=names["reviewer"], password=PASSWORD) as r:
        img = c.image(image.id)
        made = [img.create_annotation(box(100 * i, 100, 100 * i + 50, 150), project=project.id)
                for i in range(1, 4)]
        assert [a.review_status for a in made] == ["pending"] * 3
        with pytest.raises(Forbidden):
            made[0].review("accept")
        seen = r.annotation(made[0].id)
        c.annotation(made[0].id).update(box(0, 0, 20, 20))
        with pytest.raises(Conflict):
            seen.review("accept")  # changed since the reviewer saw it
        accepted = r.annotation(made[0].id).review("accept", terms=[tumour.id])
        assert accepted.review_status == "accepted" and accepted.terms == [tumour.id]
        assert r.bulk_annotations("reject", made[1:2], reason="out of focus") == 1
        assert r.bulk_annotations("accept", made[2:]) == 1
        assert [h["action"] for h in r.annotation(made[1].id).reviews()] == ["reject"]
    status = image.review_status(project=project.id)
    assert (status["reviewed"], status["accepted"], status["rejected"]) == (True, 2, 1)
    assert project.review_status()["images"][0]["reviewed"] is True
    rows = list(image.annotation_table(sort="area", order="desc", project=project.id))
    assert [row["id"] for row in rows][-1] == made[0].id  # the smallest after its edit
    assert {row["review_status"] for row in rows} == {"accepted", "rejected"}
    assert len(list(project.annotation_table(status=["rejected"]))) == 1
    assert [x["name"] for x in image.layers(project=project.id)] == [names["contributor"]]
    stats = project.annotation_stats()
    assert sum(s["count"] for s in stats) == 3
    out = image.export_table(tmp_path / "reviewed.csv", reviewed=True, project=project.id)
    got = list(csv.DictReader(out.read_text().splitlines()))
    assert sorted(int(x["id"]) for x in got) == sorted([made[0].id, made[2].id])
    xlsx = project.export_table(tmp_path / "all.xlsx", format="xlsx")
    assert xlsx.read_bytes()[:2] == b"PK"
