from darkclusters.logs import log_to_file
from darkclusters.simulations.synthetic.universe import synthesize_simulation

log_to_file(snakemake.log[0])
p = snakemake.params
synthesize_simulation(snakemake.wildcards.sim, p.sim_cfg, seed=p.seed, out_dir=snakemake.output.sim)
