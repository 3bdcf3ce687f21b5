"""Accuracy of fused LST against a reference (simulated truth or held-out Landsat).

:func:`scores` and :func:`metrics` are numpy kernels (MAE, RMSE, bias, unbiased RMSE,
Pearson r, R^2, SSIM, PSNR); :func:`grouped_metrics` applies them per day, per land-cover
class, at land-cover edges / interior and overall, over one mask shared by every method;
:func:`compare_with_truth` streams a whole cube and its truth through Dask chunk by chunk.
:mod:`lst_pipeline.evaluate.calibration` checks ``lst_uncertainty``: coverage within 1 and 2
sigma, by reference age, rank correlation and reliability bins.
"""

from lst_pipeline.evaluate.calibration import Calibration, calibration, calibration_table
from lst_pipeline.evaluate.comparison import (
    ALL_METHODS,
    Comparison,
    calibrate_cube_with_truth,
    compare_cubes_with_truth,
    compare_methods,
    compare_methods_holdout,
    compare_with_truth,
    comparison_table,
    evaluate,
)
from lst_pipeline.evaluate.metrics import (
    LST_DATA_RANGE_K,
    METRIC_LABELS,
    Metrics,
    Scores,
    edge_mask,
    grouped_metrics,
    metrics,
    scores,
    ssim_map,
)
from lst_pipeline.evaluate.report import write_report

__all__ = ["ALL_METHODS", "LST_DATA_RANGE_K", "METRIC_LABELS", "Calibration", "Comparison",
           "Metrics", "Scores", "calibrate_cube_with_truth", "calibration", "calibration_table",
           "compare_cubes_with_truth", "compare_methods", "compare_methods_holdout",
           "compare_with_truth", "comparison_table", "edge_mask", "evaluate", "grouped_metrics",
           "metrics", "scores", "ssim_map", "write_report"]
