"""Hand-labelled regions of CMU-1-Small-Region.svs (2220 x 2967 px, 0.499 µm/px) for
retrieval-quality tests.

Each entry is the (column, row) of a TILE x TILE level-0 tile, labelled by
looking at it: "background" (glass), "epithelium" (the purple, nuclei-dense
epidermis and follicle walls), "stroma" (the pink collagen of the dermis).
Mixed tiles were left out on purpose.
"""

TILE = 192

LABELS: dict[str, list[tuple[int, int]]] = {
    "background": [(3, 0), (7, 0), (8, 0), (9, 0), (10, 0), (3, 1), (8, 1), (9, 1), (10, 1),
                   (3, 3), (4, 3)],
    "epithelium": [(6, 3), (6, 4), (6, 5), (6, 6), (6, 9), (6, 10), (6, 11), (7, 9), (8, 13),
                   (8, 14), (3, 14)],
    "stroma": [(7, 10), (7, 11), (7, 12), (8, 10), (8, 11), (4, 13), (5, 12), (5, 13), (6, 13),
               (4, 9), (5, 14)],
}
