package dev.nshap.backend;

import dev.nshap.NshapException;
import dev.nshap.model.GPT2Config;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Validation every backend applies to a {@link ForwardRequest}, so all refuse the same input with the same line. */
public final class RequestChecks {
    private RequestChecks() {}

    /** Checks every sequence (non-empty, within the context, ids in the vocabulary) and returns the lengths. */
    public static int[] lengths(ForwardRequest req, GPT2Config c) {
        int n = req.size(), V = c.vocabSize();
        if (n == 0) throw new NshapException("forward: empty batch");
        int[] len = new int[n];
        for (int s = 0; s < n; s++) {
            int[] toks = req.tokens.get(s);
            if (toks == null || toks.length == 0) throw new NshapException("forward: sequence " + s + " is empty");
            if (toks.length > c.nPositions())
                throw new NshapException("forward: sequence " + s + " has " + toks.length + " tokens; the model's context is " + c.nPositions());
            for (int t : toks)
                if (t < 0 || t >= V) throw new NshapException("forward: token id " + t + " outside the vocabulary (0.." + (V - 1) + ")");
            len[s] = toks.length;
        }
        return len;
    }

    /** Checks scored positions and targets; returns the number of scored rows. */
    public static int scoredRows(ForwardRequest req, int[] len, GPT2Config c) {
        int total = 0;
        for (int s = 0; s < req.size(); s++) {
            int[] pos = scorePositions(req, s);
            if (pos == null) continue;
            for (int p : pos)
                if (p < 0 || p >= len[s]) throw new NshapException("forward: scored position " + p + " outside sequence " + s + " of length " + len[s]);
            int[] tg = targets(req, s);
            if (tg != null) {
                if (tg.length != pos.length)
                    throw new NshapException("forward: sequence " + s + " has " + pos.length + " scored positions but " + tg.length + " targets");
                for (int t : tg) if (t < 0 || t >= c.vocabSize()) throw new NshapException("forward: target token " + t + " outside the vocabulary");
            }
            total += pos.length;
        }
        return total;
    }

    public static int[] scorePositions(ForwardRequest req, int s) {
        return s < req.scorePositions.size() ? req.scorePositions.get(s) : null;
    }

    public static int[] targets(ForwardRequest req, int s) {
        return s < req.targets.size() ? req.targets.get(s) : null;
    }

    /** Checks the interventions against the model and the batch, grouped by hook point in request order. */
    public static Map<HookPoint, List<Intervention>> interventionsByHook(ForwardRequest req, GPT2Config c, int nSeq, int start) {
        Map<HookPoint, List<Intervention>> by = new HashMap<>();
        for (Intervention iv : req.interventions) {
            HookPoint hp = iv.hook().checkFor(c);
            if (hp.layer() < start)
                throw new NshapException("forward: intervention at " + hp + " lies before the start layer " + start);
            int width = hp.width(c);
            if (iv.units() != null)
                for (int u : iv.units())
                    if (u < 0 || u >= width) throw new NshapException("forward: unit " + u + " outside " + hp + " (width " + width + ")");
            if (iv.sequences() != null)
                for (int s : iv.sequences())
                    if (s < 0 || s >= nSeq) throw new NshapException("forward: intervention names sequence " + s + " of a batch of " + nSeq);
            if (iv.op() == Intervention.Op.REPLACE && (iv.vector() == null || iv.vector().length != width))
                throw new NshapException("forward: replacement vector at " + hp + " must have " + width + " values");
            if (iv.op() == Intervention.Op.ADD && (iv.vector() == null || iv.vector().length != width))
                throw new NshapException("forward: added vector at " + hp + " must have " + width + " values");
            by.computeIfAbsent(hp, k -> new ArrayList<>()).add(iv);
        }
        return by;
    }

    /** Checks the start layer, the start residual of every sequence, and that no cached hook lies before the start. */
    public static int startLayer(ForwardRequest req, int[] len, GPT2Config c) {
        int start = req.startLayer;
        if (start < 0 || start > c.nLayer()) throw new NshapException("forward: start layer " + start + " outside 0.." + c.nLayer());
        if (start > 0) {
            if (req.startResidual == null || req.startResidual.size() != len.length)
                throw new NshapException("forward: start layer " + start + " needs a start residual for each of the " + len.length + " sequences");
            for (int s = 0; s < len.length; s++) {
                float[] r = req.startResidual.get(s);
                if (r == null || r.length != len[s] * c.nEmbd())
                    throw new NshapException("forward: start residual of sequence " + s + " has the wrong size");
            }
        }
        for (HookPoint hp : req.cache) {
            hp.checkFor(c);
            if (hp.layer() < start) throw new NshapException("forward: cannot cache " + hp + " before the start layer " + start);
        }
        return start;
    }
}
