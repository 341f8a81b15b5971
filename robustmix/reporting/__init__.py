"""Reporting: records and their analysis as tables, text and figures.

    tables.py   the paper's Table 3 layout; evidence (intervals, paired tests, checks) as Markdown, CSV,
                LaTeX and JSON
    text.py     the soundness checks and verdicts as printed after the tables
    figures.py  robustness curves, Figure 2, reliability diagrams (PNG, matplotlib Agg)
    blocks.py   a report as blocks -> GitHub Markdown; sections of a Markdown document cut out to carry
    page.py     blocks -> one self-contained HTML page (contents, folding sections, sortable tables,
                notes on hover, images and linked files embedded, cited sections carried)

May import: runtime, data, models, attacks, store, training, evaluation, soundness, analysis.
"""

from .figures import figure2, reliability_figure, robustness_figure, save_png
from .tables import (
           evidence,
           render_markdown,
           render_report_markdown,
           report_csv,
           report_json,
           report_latex,
           table3,
)

__all__ = ["evidence", "figure2", "reliability_figure", "render_markdown", "render_report_markdown", "report_csv",
           "report_json", "report_latex", "robustness_figure", "save_png", "table3"]
