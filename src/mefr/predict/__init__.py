"""Use a trained model: train one on a whole database, save it, predict new clips, explain.

Training (``mefr train``)
    :func:`load_training_data` reads the training clips - raw databases through their
    readers, a label protocol and :func:`mefr.preprocess.build_features`; the synthetic
    databases of :func:`mefr.data.write_synthetic_databases`; or a pre-computed flow set
    - and :func:`train_model` fits one network on all of them with
    :func:`mefr.train.engine.train_group` (one job: every row trains, none is tested).
    The result is a :class:`Predictor`; :meth:`Predictor.save` writes the model file
    (:mod:`mefr.modelfile`: safetensors weights plus a JSON header with everything needed
    to use the model).

Prediction (``mefr predict``)
    :meth:`Predictor.from_file` loads a model file (safetensors only, never a pickle) and
    checks it against this installation (:func:`mefr.modelfile.check_compatibility`).
    :meth:`Predictor.predict` takes clips as

    * a video file (``.mp4``, ``.avi``, ... read with ``cv2.VideoCapture``): the whole
      video is one clip, first frame = onset, last frame = offset;
    * a folder of frames (image files whose names end in the frame number, sorted by it;
      the first is the onset);
    * an ``(onset, apex)`` pair of images (paths or ``uint8`` arrays);
    * a :class:`FramesInput` (frames as paths or arrays, optionally the apex index).

    Each clip is turned into the network input by the *same* code and the *same*
    :class:`~mefr.preprocess.PreprocessSettings` as the training clips (the model file
    holds them): face found on the onset frame (libfacedetection), every frame cropped with
    that box, apex spotted where none is given - by the middle frame when the model's
    apex policy is ``middle``, else by the inter-frame difference of Eq. (1) - and TV-L1
    flow between the onset and apex crops, resized and normalised. All inputs then go
    through the network in batches. A clip that fails (unreadable video, a folder
    without frames, no face, ...) gets a :class:`Prediction` whose ``error`` names the
    input and the reason; the others are predicted.

Ensembles (``mefr train --seeds 0-4``, ``mefr ensemble-model A B --out E``)
    A model file may hold an ensemble: N member networks (one network's seeds, or
    networks with the same classes and preprocessing) whose class probabilities are
    averaged per clip with the file's weights. :func:`train_ensemble` trains one member
    per seed; :func:`bundle_model_files` bundles model files into one;
    :func:`ensemble_of` combines predictors in memory; :func:`model_summary` describes a
    file's members (:mod:`mefr.predict.ensemble`).

Shipped models (``mefr predict --model NAME``, ``mefr models --pretrained``)
    :meth:`Predictor.from_pretrained` loads a model that ships inside the package by name
    (``fr-megc2019``, ``off_apexnet-megc2019``), offline, after checking its sha256;
    :func:`pretrained_names` lists them and :func:`model_card` gives a model's card
    (:mod:`mefr.predict.pretrained`, ``docs/pretrained.md``).

Explanations (``mefr predict --explain DIR``)
    FR's attention (Eqs. (2)-(3)) acts on the 1024-d shared feature vector, not on the
    image, so it cannot be drawn over the face. What can: the input gradient of each
    class's expression-specific branch - detector k's logit (Eq. (4)) for the FR family,
    the class logit for networks without detectors - ``|d score / d input|`` summed over
    the input channels (u, v [, strain]) and averaged over noisy copies of the input
    (SmoothGrad), upsampled to the face crop. :func:`write_explanation` draws it with the
    onset and apex faces and the flow (HSV colour wheel and arrows).
"""

from mefr.predict.ensemble import bundle_model_files, ensemble_of, model_summary
from mefr.predict.explain import face_crops, flow_to_rgb, write_explanation
from mefr.predict.inputs import (
    FramesInput,
    PredictInput,
    PreparedClip,
    folder_frames,
    prepare_input,
    read_video,
)
from mefr.predict.predictor import Predictor
from mefr.predict.pretrained import PretrainedError, model_card, pretrained_names
from mefr.predict.results import Prediction, explanation_name, format_table
from mefr.predict.training import (
    TrainingData,
    describe_data,
    load_training_data,
    raw_preprocess_section,
    train_ensemble,
    train_model,
)

__all__ = [
    "FramesInput",
    "PredictInput",
    "PreparedClip",
    "Prediction",
    "Predictor",
    "PretrainedError",
    "TrainingData",
    "bundle_model_files",
    "describe_data",
    "ensemble_of",
    "explanation_name",
    "face_crops",
    "flow_to_rgb",
    "folder_frames",
    "format_table",
    "load_training_data",
    "model_card",
    "model_summary",
    "prepare_input",
    "pretrained_names",
    "raw_preprocess_section",
    "read_video",
    "train_ensemble",
    "train_model",
    "write_explanation",
]
