"""Find a dataset's own problems before training on it: label issues, near duplicates,
outliers, and almost blank, very dark or very blurry images (``cnnlab data issues``)."""

from cnnlab.cleaning.pipeline import IssuesResult, find_issues, issues_config

__all__ = ["IssuesResult", "find_issues", "issues_config"]
