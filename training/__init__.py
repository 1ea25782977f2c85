"""primer-serving: training the primer's classifiers and exporting them as versioned SavedModels."""
