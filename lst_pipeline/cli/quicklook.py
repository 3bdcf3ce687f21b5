"""``quicklook CUBE``: a day's map, a point's series or an animated range."""

from __future__ import annotations

import argparse

from lst_pipeline.cli.common import path_arg, store_arg


def add_parsers(sub) -> None:
    """Register the command on the ``lst-pipeline`` subparsers."""
    p = sub.add_parser("quicklook", help="PNG of a day's map or a point's series; GIF of days",
                       description="Draw from an output cube: the map of one day (--date) with "
                                   "its flags, the daily series at a point (--point lon,lat) "
                                   "with the input Landsat and MODIS overlaid, or an animated "
                                   "GIF of the days START..END (--animate). Reads only the "
                                   "chunks it needs.")
    p.add_argument("cube", type=store_arg,
                   help="output cube (Zarr path or URL), e.g. demo_output/cube.zarr")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--date", metavar="YYYY-MM-DD", help="map of this day")
    what.add_argument("--point", metavar="LON,LAT", help="time series at this point (degrees)")
    what.add_argument("--animate", nargs=2, metavar=("START", "END"),
                      help="animated GIF of the daily maps START..END (YYYY-MM-DD, inclusive)")
    p.add_argument("-o", "--output", type=path_arg, default=None,
                   help="file to write (default: lst_<date>.png, lst_point_<lon>_<lat>.png or "
                        "lst_<start>_<end>.gif in the current directory)")
    p.add_argument("--inputs", type=store_arg, default=None,
                   help="input stack to overlay on --point (default: the one recorded in the "
                        "cube's attributes, if it exists)")
    p.add_argument("--no-uncertainty", action="store_true",
                   help="--date: leave out the lst_uncertainty map (drawn when the cube has it)")
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second (default 4)")
    p.set_defaults(func=cmd_quicklook)


def cmd_quicklook(args: argparse.Namespace) -> int:
    """Parse the selection, draw it, print where it went."""
    from lst_pipeline import explore, quicklook
    from lst_pipeline.io.cube import open_cube

    cube = open_cube(args.cube, flags=False)
    name = args.cube.name
    if args.date:
        path = quicklook.day_png(cube, name, explore.parse_date(args.date), args.output,
                                 uncertainty=not args.no_uncertainty)
    elif args.point:
        lon, lat = explore.parse_lonlat(args.point)
        path = quicklook.point_png(cube, name, lon, lat, args.output, inputs=args.inputs)
    else:
        start, end = (explore.parse_date(d, option="--animate") for d in args.animate)
        path = quicklook.range_gif(cube, name, start, end, args.output, fps=args.fps)
    print(f"wrote {path.resolve()}")
    return 0
