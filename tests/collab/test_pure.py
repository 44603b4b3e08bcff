"""Pure pieces: scanner metadata to properties, content sniffing, download names."""

from __future__ import annotations

from microtome.catalog import attachments, scanner_props


def test_scanner_properties_from_normalised_metadata() -> None:
    props = scanner_props.from_source({
        "format": "svs", "vendor": "aperio", "scanner": "Aperio GT450 [SN 1]",
        "acquired": "2024-01-02T03:04:05", "objective_power": 20.0,
        "pixel_size_um": [0.2527, 0.2527], "width": 10})
    assert props == {"scanner": "Aperio GT450 [SN 1]", "acquired": "2024-01-02T03:04:05",
                     "vendor": "aperio", "objective power": "20.0", "format": "svs",
                     "pixel size um": "0.2527"}
    assert scanner_props.from_source({"scanner": None, "vendor": ""}) == {}


def test_sniffing_decides_by_content() -> None:
    assert attachments.sniff(b"%PDF-1.7\n", "x.bin") == attachments.PDF
    assert attachments.sniff(b"a,b\n1,2\n", "cells.csv") == attachments.CSV
    assert attachments.sniff(b"notes", "notes.txt") == attachments.TEXT
    for markup in (b"<!DOCTYPE html><p>", b"  <svg onload=x>", b"<script>x</script>",
                   b"hello <script>alert(1)</script>"):
        assert attachments.sniff(markup, "report.pdf") == attachments.OCTET
    assert attachments.sniff(b"\x00\x01binary", "a.csv") == attachments.OCTET
    assert attachments.safe_filename('../../etc/"passwd";\r\n') == "passwd"
    assert attachments.safe_filename("...") == "attachment"
    cd = attachments.content_disposition("résumé.pdf")
    assert cd.startswith('attachment; filename="r_sum_.pdf"') and "UTF-8''r%C3%A9sum%C3%A9" in cd
