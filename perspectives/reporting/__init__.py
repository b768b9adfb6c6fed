"""Reporting: a run or sweep folder's analyses written out, figures, plots, the HTML report,
and progress display."""
