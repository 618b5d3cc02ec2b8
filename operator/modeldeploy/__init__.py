"""modeldeploy-operator: one ModelDeployment in, a production model server out."""

__version__ = "0.1.0"
