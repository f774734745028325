"""One planner per pass, each returning a `Plan` (plan.py): forward, backward_data (the input gradient and
conv_transpose1d), backward_weight (weight and bias gradients), and the staged input copies they read."""
