package dev.nshap.eval;

import dev.nshap.NshapException;
import dev.nshap.backend.HookPoint;
import dev.nshap.backend.NeuronId;
import dev.nshap.cluster.Cluster;
import dev.nshap.model.GPT2Config;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The players of a neuron game: single MLP neurons, or groups of neurons that enter and leave a coalition together.
 * <p>
 * A spec is {@code all}, a comma-separated list of layers ({@code blocks.L.mlp.hook_post}) and/or neuron ids
 * ({@code blocks.L.mlp.hook_post[N]}), or a file. In a file each non-empty line (after removing {@code #} comments)
 * is either a layer name (its neurons, as in the spec) or one or more neuron ids separated by blanks or commas,
 * which form ONE player (a group); a JSON cluster file gives its neurons as single players. With a group size
 * G &gt; 1, the neurons of each whole layer are taken in consecutive runs of G, named {@code blocks.L.mlp.hook_post[a:b]}.
 */
public record NeuronPlayers(List<Player> players, String spec) {

    /** One player: its neurons, all of which are kept or ablated together. */
    public record Player(String name, NeuronId[] neurons) {
        /** The layer of its neurons, or -1 when a group spans layers. */
        public int layer() {
            int l = neurons[0].layer();
            for (NeuronId n : neurons) if (n.layer() != l) return -1;
            return l;
        }
        public int index() { return neurons[0].index(); }
    }

    public int size() { return players.size(); }

    public Player get(int i) { return players.get(i); }

    public boolean hasGroups() {
        for (Player p : players) if (p.neurons.length > 1) return true;
        return false;
    }

    /** Layers with at least one neuron in play, ascending. */
    public int[] layers() {
        TreeSet<Integer> s = new TreeSet<>();
        for (Player p : players) for (NeuronId n : p.neurons) s.add(n.layer());
        return s.stream().mapToInt(Integer::intValue).toArray();
    }

    public long neuronCount() {
        long n = 0;
        for (Player p : players) n += p.neurons.length;
        return n;
    }

    public static NeuronPlayers parse(String spec, int groupSize, GPT2Config cfg) {
        if (spec == null || spec.isBlank()) throw new NshapException("--players: empty (all | blocks.L.mlp.hook_post | FILE)");
        if (groupSize < 1) throw new NshapException("--group-size must be at least 1");
        List<Player> out = new ArrayList<>();
        String s = spec.trim();
        Path file = Path.of(s);
        if (!s.equals("all") && Files.isRegularFile(file)) {
            readFile(file, groupSize, cfg, out);
        } else if (!s.equals("all") && !s.startsWith("blocks.")) {
            throw new NshapException("--players " + s + ": no such file (expected all, blocks.L.mlp.hook_post, a neuron id list or a FILE)");
        } else {
            for (String tok : s.split(",")) {
                tok = tok.trim();
                if (tok.isEmpty()) continue;
                addToken(tok, groupSize, cfg, out, "--players");
            }
        }
        if (out.isEmpty()) throw new NshapException("--players " + s + ": no players");
        Map<NeuronId, String> owner = new HashMap<>();
        for (Player p : out)
            for (NeuronId n : p.neurons)
                if (owner.put(n, p.name) != null)
                    throw new NshapException("--players " + s + ": neuron " + n + " is in play twice");
        return new NeuronPlayers(List.copyOf(out), s);
    }

    private static void addToken(String tok, int groupSize, GPT2Config cfg, List<Player> out, String where) {
        if (tok.equals("all")) {
            for (int l = 0; l < cfg.nLayer(); l++) addLayer(l, groupSize, cfg, out);
        } else if (NeuronId.isGroup(tok)) {
            out.add(group(parseGroup(tok, cfg, where), tok.contains(":") ? tok : null));
        } else if (tok.contains("[")) {
            NeuronId n = parseNeuron(tok, cfg, where);
            out.add(new Player(n.toString(), new NeuronId[]{n}));
        } else {
            HookPoint hp;
            try {
                hp = HookPoint.parse(tok);
            } catch (NshapException e) {
                throw new NshapException(where + ": " + e.getMessage());
            }
            if (hp.kind() != HookPoint.Kind.MLP_POST)
                throw new NshapException(where + ": players are MLP neurons (blocks.L.mlp.hook_post), not " + tok);
            try {
                hp.checkFor(cfg);
            } catch (NshapException e) {
                throw new NshapException(where + ": " + e.getMessage());
            }
            addLayer(hp.layer(), groupSize, cfg, out);
        }
    }

    /** The neurons of an id or group spelling ({@code [A:B]}, '+'), each checked against the model. */
    private static List<NeuronId> parseGroup(String tok, GPT2Config cfg, String where) {
        try {
            List<NeuronId> ns = NeuronId.parseGroup(tok);
            for (NeuronId n : ns) n.checkFor(cfg);
            return ns;
        } catch (NshapException e) {
            throw new NshapException(where + ": " + e.getMessage());
        }
    }

    /**
     * One player of these neurons, named as results name it (so a name read back from a result gives the same
     * player): a range {@code [a:b]} keeps that name, a single id is itself, a list is its ids joined by '+'.
     */
    static Player group(List<NeuronId> list, String rangeName) {
        NeuronId[] ns = list.toArray(new NeuronId[0]);
        Arrays.sort(ns);
        if (ns.length == 1) return new Player(ns[0].toString(), ns);
        if (rangeName != null) return new Player(HookPoint.mlpPost(ns[0].layer()) + "[" + ns[0].index() + ":" + (ns[ns.length - 1].index() + 1) + "]", ns);
        StringBuilder name = new StringBuilder(ns[0].toString());
        for (int k = 1; k < ns.length; k++) name.append('+').append(ns[k]);
        return new Player(name.toString(), ns);
    }

    private static NeuronId parseNeuron(String tok, GPT2Config cfg, String where) {
        try {
            return NeuronId.parse(tok).checkFor(cfg);
        } catch (NshapException e) {
            throw new NshapException(where + ": " + e.getMessage());
        }
    }

    private static void addLayer(int l, int g, GPT2Config cfg, List<Player> out) {
        int H = cfg.nInner();
        for (int a = 0; a < H; a += g) {
            int b = Math.min(H, a + g);
            NeuronId[] ns = new NeuronId[b - a];
            for (int i = a; i < b; i++) ns[i - a] = new NeuronId(l, i);
            out.add(new Player(g == 1 ? ns[0].toString() : HookPoint.mlpPost(l) + "[" + a + ":" + b + "]", ns));
        }
    }

    private static void readFile(Path file, int groupSize, GPT2Config cfg, List<Player> out) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new NshapException(file + ": cannot read: " + e.getMessage());
        }
        if (text.stripLeading().startsWith("{")) {
            Cluster c = Cluster.read(file);
            for (Cluster.Member m : c.neurons()) {
                NeuronId n = parseNeuron(m.id().toString(), cfg, file.toString());
                out.add(new Player(n.toString(), new NeuronId[]{n}));
            }
            return;
        }
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            int hash = line.indexOf('#');
            if (hash >= 0) line = line.substring(0, hash);
            line = line.trim();
            if (line.isEmpty()) continue;
            String where = file + ":" + (i + 1);
            String[] toks = line.split("[\\s,]+");
            if (toks.length == 1) {
                addToken(toks[0], groupSize, cfg, out, where);
                continue;
            }
            List<NeuronId> ns = new ArrayList<>();
            for (String t : toks) {
                if (!t.contains("["))
                    throw new NshapException(where + ": a group lists neuron ids (blocks.L.mlp.hook_post[N] or [A:B]), not " + t);
                ns.addAll(parseGroup(t, cfg, where));
            }
            out.add(group(ns, null));
        }
    }
}
