"""The model-from-code file MLflow stores with a registered cnnlab model (no pickle).

MLflow runs this file when it loads the model; it names the class that predicts.
"""

import mlflow

from cnnlab.track.pyfunc import CnnlabModel

mlflow.models.set_model(CnnlabModel())
