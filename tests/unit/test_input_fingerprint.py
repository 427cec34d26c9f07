"""The fingerprint that lets an identical ingest rerun skip Spark: settings and every byte count."""

from pipelines.ingest.batches import input_fingerprint


def test_the_fingerprint_follows_settings_and_bytes(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("uid,sku,at\nu1,i1,2024-03-01T10:00:00Z\n")
    b.write_text("sku,name\ni1,Item\n")
    first = input_fingerprint("settings", [str(a), str(b)], chunk=7)
    assert first == input_fingerprint("settings", [str(a), str(b)])  # the read size does not matter
    assert first != input_fingerprint("other settings", [str(a), str(b)])
    assert first != input_fingerprint("settings", [str(b), str(a)])
    a.write_text("uid,sku,at\nu1,i2,2024-03-01T10:00:00Z\n")  # same size, one byte changed
    assert first != input_fingerprint("settings", [str(a), str(b)])


def test_remote_or_missing_inputs_are_never_fingerprinted(tmp_path):
    assert input_fingerprint("s", ["s3://bucket/events.csv"]) is None
    assert input_fingerprint("s", [str(tmp_path / "missing.csv")]) is None
    assert input_fingerprint("s", [str(tmp_path)]) is None  # a folder: read by Spark, not hashed here
