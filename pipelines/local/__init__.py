"""One video on this machine: `clipforge process` (`one_video`, with its checks in `preflight`
and its terminal lines in `progress`), the notebook API behind `import clipforge` (`notebook`),
and the output folder they write (`run_outputs`, `report*`)."""
