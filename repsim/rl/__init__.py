"""Meta-reinforcement learning: MAML and ANIL policies (Table 2 of Raghu et al., ICLR 2020).

One module per job, data flowing one way::

    envs (tasks, batched environments) --sampling--> episodes --returns--> advantages
    policy + episodes --inner loop (repsim.inner_loop.InnerLoop, REINFORCE loss)--> fast weights
    post-adaptation episodes --trpo--> meta-update --train--> checkpoints
    checkpoint --evaluate / similarity / report--> returns, layer similarity, Table 2 rows

- :mod:`repsim.rl.envs`: 2D-Navigation (numpy, vectorised over tasks and trajectories) and the
  HalfCheetah-Direction / -Velocity wrappers on gymnasium's ``HalfCheetah-v5``;
- :mod:`repsim.rl.policy`: the Gaussian MLP policy (``fc1``, ``fc2``, ``head``) and the
  REINFORCE inner loss;
- :mod:`repsim.rl.sampling`: roll policies out on a batch of tasks;
- :mod:`repsim.rl.returns`: discounted returns, the linear feature baseline and GAE;
- :mod:`repsim.rl.trpo`: conjugate gradient, Fisher-vector product and the TRPO step;
- :mod:`repsim.rl.metalearn`: the meta-objective (adapt, surrogate, KL) of a meta-batch;
- :mod:`repsim.rl.config`: the run's configuration and the presets (docs/meta-rl-protocol.md);
- :mod:`repsim.rl.train`: the meta-iteration, held-out monitoring, the loop and the driver
  with checkpoint / resume;
- :mod:`repsim.rl.evaluate`, :mod:`repsim.rl.similarity`, :mod:`repsim.rl.report`: analysis.

Nothing heavy is imported here: gymnasium and mujoco load only when a HalfCheetah task is built.
"""
