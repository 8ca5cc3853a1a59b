/**
 * BBR sends at the bandwidth and round trip it measures, where reno and cubic halve their window
 * at each loss: on a 50 ms path with 0.1% loss one reno connection carries a few Mbit/s
 * (Mathis: MSS / RTT x 1.22 / sqrt(loss)), whatever the link (`wan_bbr_single` measures it).
 */
export const DEFAULT_CONGESTION = "bbr";
