/* Tree-ensemble evaluation for the local XGBoost container (localmode/serving/trees.py).
 *
 * Mirrors XGBoost 1.7's CPU predictor for one dense row: every tree adds its leaf to
 * its output group's margin, in tree order, in float32; a missing value (NaN, or a
 * feature beyond the row) follows the node's default direction; otherwise
 * `value < split` goes left. Built without -ffast-math so float semantics are IEEE.
 * (Measured: walking several trees in lockstep or branch-free selects was no faster
 * here than this plain walk over nodes packed per tree.)
 */
#include <math.h>
#include <stdint.h>

/* One node; a tree's nodes are contiguous, so a walk stays within a few cache lines. */
typedef struct {
    int32_t left;                /* absolute index of the left child, -1 for a leaf */
    int32_t right;
    int32_t feature;
    float value;                 /* split condition, or the leaf value for a leaf */
    int32_t default_left;
} node_t;

typedef struct {
    int32_t n_trees;
    int32_t n_groups;
    int32_t n_features;
    const int32_t *roots;        /* per tree: index of its root node */
    const int32_t *groups;       /* per tree: output group (class) */
    const node_t *nodes;
    const float *base_margin;    /* per group */
} forest_t;

void forest_margins(const forest_t *forest, const float *row, int32_t row_width, float *margins)
{
    const node_t *nodes = forest->nodes;
    for (int32_t g = 0; g < forest->n_groups; ++g) {
        margins[g] = forest->base_margin[g];
    }
    for (int32_t t = 0; t < forest->n_trees; ++t) {
        const node_t *node = nodes + forest->roots[t];
        while (node->left >= 0) {
            float v = node->feature < row_width ? row[node->feature] : NAN;
            if (isnan(v)) {
                node = nodes + (node->default_left ? node->left : node->right);
            } else {
                node = nodes + (v < node->value ? node->left : node->right);
            }
        }
        margins[forest->groups[t]] += node->value;
    }
}

/* multi:softmax's prediction: the index of the first largest margin (XGBoost's FindMaxIndex). */
int32_t forest_argmax(const forest_t *forest, const float *row, int32_t row_width)
{
    float margins[256];
    int32_t best = 0;
    if (forest->n_groups > 256) {
        return -1;
    }
    forest_margins(forest, row, row_width, margins);
    for (int32_t g = 1; g < forest->n_groups; ++g) {
        if (margins[g] > margins[best]) {
            best = g;
        }
    }
    return best;
}
