"""Running a suite's cells as jobs: in this process (``inline``), as local processes (``local``, one per
GPU) or on a Slurm cluster (``slurm``), through submitit. See README.md, "Running on a Slurm cluster"."""
