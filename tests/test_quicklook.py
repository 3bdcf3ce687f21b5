"""`lst-pipeline quicklook`: a day's map, a point's series, an animated GIF, and clear errors."""

from __future__ import annotations

import pytest
from PIL import Image
from pyproj import Transformer

from lst_pipeline.cli import main
from lst_pipeline.io.cube import open_cube


def _point(cube_path) -> str:
    cube = open_cube(cube_path, flags=False)
    lon, lat = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True).transform(
        float(cube.x[40]), float(cube.y[12]))
    return f"{lon:.6f},{lat:.6f}"


def test_quicklook_date_point_and_gif(small_cube, tmp_path, capsys):
    cube = str(small_cube.output.cube)
    day = tmp_path / "out" / "day.png"
    assert main(["quicklook", cube, "--date", "2021-01-20", "-o", str(day)]) == 0
    assert f"wrote {day}" in capsys.readouterr().out
    with Image.open(day) as im:
        assert im.format == "PNG" and im.size[0] > 600
        with_sigma = im.size[0]
    # the cube has lst_uncertainty: its map is the third panel, unless left out
    plain = tmp_path / "out" / "plain.png"
    assert main(["quicklook", cube, "--date", "2021-01-20", "--no-uncertainty", "-o",
                 str(plain)]) == 0
    with Image.open(plain) as im:
        assert with_sigma > 1.3 * im.size[0]

    series = tmp_path / "series.png"
    assert main(["quicklook", cube, "--point", _point(cube), "-o", str(series)]) == 0
    assert "no input stack" not in capsys.readouterr().out  # overlay found from the attrs
    with Image.open(series) as im:
        assert im.format == "PNG"

    gif = tmp_path / "days.gif"
    assert main(["quicklook", cube, "--animate", "2021-01-05", "2021-01-09", "-o",
                 str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 5


@pytest.mark.parametrize("args, message", [
    (["--date", "2020-12-31"], "2020-12-31 is outside the cube's days"),
    (["--point", "147.9"], "is not 'lon,lat'"),
    (["--point", "10,10"], "outside the cube's grid"),
    (["--animate", "2021-01-09", "2021-01-05"], "END 2021-01-05 is before START"),
])
def test_quicklook_errors(small_cube, tmp_path, capsys, args, message):
    out = tmp_path / "x.png"
    assert main(["quicklook", str(small_cube.output.cube), *args, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_quicklook_missing_cube(tmp_path, capsys):
    assert main(["quicklook", str(tmp_path / "none.zarr"), "--date", "2021-01-01"]) == 2
    assert "none.zarr: no cube here" in capsys.readouterr().err
