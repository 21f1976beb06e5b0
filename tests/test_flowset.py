"""The pre-computed flow-set reader on files made in the published layout."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from mefr.data.flowset import FlowSetError, load_flowset


def _write(root: Path, rows: list[tuple[str, str, str, str]], naming: str = " .png") -> dict:
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    rgb = {}
    rng = np.random.default_rng(0)
    for ds, sub, clip, label in rows:
        lines.append(f"{ds},{sub},{clip},{label},,{sub}_{clip}.jpg,")
        img = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)  # RGB = u, v, strain
        name = f"{sub}_{clip}{naming}"
        ok, buf = cv2.imencode(".png", img[:, :, ::-1])  # OpenCV writes BGR
        assert ok
        (root / "imgs" / name).write_bytes(buf.tobytes())
        rgb[(sub, clip)] = img
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return rgb


ROWS = [("smic", "s01", "s01_ne_01", "0"), ("casme2", "sub01", "EP02_01f", "1"),
        ("samm", "006", "006_1_2", "2")]


@pytest.mark.parametrize("naming", [" .png", ".png", ""])
def test_reads_every_published_naming_and_channel_order(tmp_path, naming):
    rgb = _write(tmp_path, ROWS, naming)
    fs = load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")
    assert fs.table["dataset"].tolist() == ["smic_hs", "casme2", "samm"]
    assert fs.table["subject"].tolist() == ["s01", "sub01", "006"]  # leading zeros kept
    assert fs.table["label"].tolist() == [0, 1, 2]
    assert fs.table["label_name"].tolist() == ["negative", "positive", "surprise"]
    for i, (_, sub, clip, _) in enumerate(ROWS):
        expect = rgb[(sub, clip)].transpose(2, 0, 1) / 255.0
        np.testing.assert_allclose(fs.x[i], expect, atol=1e-6)
    np.testing.assert_array_equal(fs.select_channels(("u", "v")), fs.x[:, :2])


def test_missing_image_names_the_row(tmp_path):
    _write(tmp_path, ROWS)
    (tmp_path / "imgs" / "sub01_EP02_01f .png").unlink()
    with pytest.raises(FlowSetError, match=r"labels.csv, row 3: no image 'sub01_EP02_01f'"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("label", "7", "label 7 is not one of 0, 1, 2"),
    ("label", "x", "label 'x' is not an integer"),
    ("dataset", "casme3", "unknown dataset 'casme3'"),
])
def test_bad_rows_are_named(tmp_path, field, value, message):
    _write(tmp_path, ROWS)
    csv = tmp_path / "labels.csv"
    lines = csv.read_text().splitlines()
    cols = lines[0].split(",")
    cells = lines[2].split(",")
    cells[cols.index(field)] = value
    lines[2] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(FlowSetError, match=f"row 3: {message}"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


def test_undecodable_image_is_named(tmp_path):
    _write(tmp_path, ROWS)
    (tmp_path / "imgs" / "006_006_1_2 .png").write_bytes(b"not a png")
    with pytest.raises(FlowSetError, match="006_006_1_2 .png: does not decode"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


def test_an_image_of_another_size_is_named(tmp_path):
    _write(tmp_path, ROWS)
    big = np.zeros((32, 30, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", big)
    assert ok
    (tmp_path / "imgs" / "sub01_EP02_01f .png").write_bytes(buf.tobytes())
    with pytest.raises(FlowSetError, match=r"sub01_EP02_01f .png: 30x32 pixels, where the "
                       r"first image is 28x28 \(.*labels.csv, row 3\)"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


def test_a_greyscale_image_is_refused_not_copied_into_three_channels(tmp_path):
    """Issue 37, item 5: a grey PNG would be read as u = v = strain."""
    _write(tmp_path, ROWS)
    grey = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", grey)
    assert ok
    (tmp_path / "imgs" / "sub01_EP02_01f .png").write_bytes(buf.tobytes())
    with pytest.raises(FlowSetError, match=r"sub01_EP02_01f .png: does not decode to a "
                       r"3-channel image: it has 1 channel\(s\).*labels.csv, row 3"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


def test_an_image_with_alpha_or_16_bits_is_refused(tmp_path):
    _write(tmp_path, ROWS)
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    (tmp_path / "imgs" / "006_006_1_2 .png").write_bytes(cv2.imencode(".png", rgba)[1].tobytes())
    with pytest.raises(FlowSetError, match=r"006_006_1_2 .png: .*it has 4 channel\(s\)"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")
    deep = np.zeros((28, 28, 3), dtype=np.uint16)
    (tmp_path / "imgs" / "006_006_1_2 .png").write_bytes(cv2.imencode(".png", deep)[1].tobytes())
    with pytest.raises(FlowSetError, match=r"006_006_1_2 .png: uint16 pixels"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the label CSV is empty"),
    ("dataset,sub,filename_o,label\nsmic,s01,s01_ne_01,0\n".encode("utf-16"),
     "the label CSV is UTF-16 encoded; save it as UTF-8"),
    (b"dataset,sub,filename_o,label\nsmic,s01,\xe9\xff,0\n", "the label CSV is not UTF-8"),
], ids=["empty", "utf-16", "latin-1"])
def test_an_unreadable_label_csv_names_the_file(tmp_path, content, message):
    """Issue 37, item 8: no bare pandas error without the file's name."""
    _write(tmp_path, ROWS)
    (tmp_path / "labels.csv").write_bytes(content)
    with pytest.raises(FlowSetError, match=rf"labels.csv: {message}"):
        load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs")


def test_a_utf8_label_csv_with_a_byte_order_mark_is_read(tmp_path):
    _write(tmp_path, ROWS)
    csv = tmp_path / "labels.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    assert len(load_flowset(tmp_path, csv_name="labels.csv", image_dir="imgs").table) == 3
