from darkclusters.evaluation.cluster import data_range_from_shard
from darkclusters.logs import log_to_file

log_to_file(snakemake.log[0])
data_range_from_shard(snakemake.input.shard, snakemake.output.data_range)
