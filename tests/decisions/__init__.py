"""Decision quality: known-answer datasets on which the drift, retraining and promotion decisions are checked."""
