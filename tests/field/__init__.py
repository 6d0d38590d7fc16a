"""Field reports: public bug reports from peers' and servers' trackers, each reduced to
the smallest input through the stand-ins (one test per report; its docstring cites the
report as owner/repo#number and names the kind of fault)."""
