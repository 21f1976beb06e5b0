"""Reports: the paper's tables and figures beside mefr's reproductions.

* :mod:`mefr.report.paper` - the published numbers (Tables 1-8, Fig. 3) as data.
* :mod:`mefr.report.tables` - one table model rendered as Markdown, CSV and LaTeX.
* :mod:`mefr.report.figures` - confusion matrices (Fig. 3) and t-SNE maps (Fig. 4).
* :mod:`mefr.report.reproduce` - ``mefr reproduce NAME``: runs what a target needs
  (reusing finished runs) and writes it.
"""

from mefr.report.paper import PAPER_TABLES, PaperTable, paper_table
from mefr.report.tables import Cell, Column, ReportTable, Row, to_csv, to_latex, to_markdown

__all__ = [
    "PAPER_TABLES",
    "Cell",
    "Column",
    "PaperTable",
    "ReportTable",
    "Row",
    "paper_table",
    "to_csv",
    "to_latex",
    "to_markdown",
]
