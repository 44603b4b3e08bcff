"""The trash through the client: a deleted project is listed, previewed, restored, purged."""

from __future__ import annotations

from typing import Any

import pytest
from microtome_client import NotFound, TrashItem

from tests.client.conftest import unique


def test_delete_restore_and_purge_a_project(client: Any) -> None:
    name = unique("trash")
    project = client.create_project(name)
    preview = client.delete_preview(project=project.id)
    assert preview["images"] == 0 and preview["trash_days"] >= 0
    project.delete()
    with pytest.raises(NotFound):
        client.project(project.id)
    (item,) = [i for i in client.trash(kind="project") if i.name == name]
    assert isinstance(item.unwrap(), TrashItem) and item.ids == [project.id]
    assert item.restore()["ids"] == [project.id]
    assert client.project(project.id).name == name
    client.project(project.id).delete()
    (item,) = [i for i in client.trash(kind="project") if i.name == name]
    client.purge(item.id)
    assert not [i for i in client.trash() if i.name == name]
    with pytest.raises(NotFound):
        client.restore(item.id)
