"""Operating the platform on Google Cloud from a workstation (no Spark): where an environment lives
(:mod:`lib.cloud.gcp`), whether it is healthy (:mod:`lib.cloud.dataproc_ops`) and the nightly chain
run by hand (:mod:`lib.cloud.chain`). Entry point: ``jobs/ops/cloud_status.py``."""
