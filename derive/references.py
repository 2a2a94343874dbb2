"""The bibliography: every source a result cites, declared once and rendered once.

A result names its sources as :class:`~derive.registry.Source` (a
:class:`Reference` and, optionally, where in it: ``"Lemma D.2"``).  The
document export collects the references of the results it prints into one
bibliography; Markdown files list the references of their result.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Reference", "ZFB2024", "LU2025", "KEMPNER2025", "VONOSWALD2023", "AKYUREK2023", "PARK2025", "TURN2026",
           "CAWLEY2025", "ISSERLIS1918", "COOKBOOK2012", "WU2025"]


@dataclass(frozen=True)
class Reference:
    key: str
    authors: str
    title: str
    venue: str
    year: int
    arxiv: str = ""
    url: str = ""

    def text(self) -> str:
        """``Authors. Title. Venue, year. arXiv:…. URL`` as plain text."""
        parts = [f"{self.authors}.", f"{self.title}.", f"{self.venue}, {self.year}."]
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}.")
        if self.url:
            parts.append(self.url)
        return " ".join(parts)

    def short(self) -> str:
        """``Zhang, Frei & Bartlett (2024)``: surnames of up to three authors, else ``et al.``."""
        names = [a.strip() for a in self.authors.replace(" and ", ", ").split(",") if a.strip()]
        surnames = [n.split()[-1] for n in names]
        if len(surnames) > 3:
            who = f"{surnames[0]} et al."
        elif len(surnames) > 1:
            who = ", ".join(surnames[:-1]) + f" & {surnames[-1]}"
        else:
            who = surnames[0] if surnames else self.authors
        return f"{who} ({self.year})"


ZFB2024 = Reference("zhang2024trained", "Ruiqi Zhang, Spencer Frei and Peter L. Bartlett",
                    "Trained Transformers Learn Linear Models In-Context",
                    "Journal of Machine Learning Research 25(49):1-55", 2024, arxiv="2306.09927",
                    url="http://jmlr.org/papers/v25/23-1042.html")
WU2025 = Reference("wu2025slides", "Haojun Wu", "Trained Transformers Learn Linear Models In-Context (lecture slides "
                   "on Zhang, Frei and Bartlett)", "University of Science and Technology of China", 2025)
LU2025 = Reference("lu2025asymptotic", "Yue M. Lu, Mary I. Letey, Jacob A. Zavatone-Veth, Anindita Maiti and "
                   "Cengiz Pehlevan", "Asymptotic theory of in-context learning by linear attention",
                   "Proceedings of the National Academy of Sciences 122(28):e2502599122", 2025, arxiv="2405.11751",
                   url="https://doi.org/10.1073/pnas.2502599122")
KEMPNER2025 = Reference("kempner2025solvable", "Kempner Institute", "Solvable Model of In-Context Learning Using "
                        "Linear Attention", "Deeper Learning blog, Kempner Institute, Harvard University", 2025,
                        url="https://kempnerinstitute.harvard.edu/research/deeper-learning/"
                            "solvable-model-of-in-context-learning-using-linear-attention")
VONOSWALD2023 = Reference("vonoswald2023transformers", "Johannes von Oswald, Eyvind Niklasson, Ettore Randazzo, "
                          "João Sacramento, Alexander Mordvintsev, Andrey Zhmoginov and Max Vladymyrov",
                          "Transformers learn in-context by gradient descent",
                          "International Conference on Machine Learning (ICML)", 2023, arxiv="2212.07677")
AKYUREK2023 = Reference("akyurek2023learning", "Ekin Akyürek, Dale Schuurmans, Jacob Andreas, Tengyu Ma and "
                        "Denny Zhou", "What learning algorithm is in-context learning? Investigations with linear "
                        "models", "International Conference on Learning Representations (ICLR)", 2023,
                        arxiv="2211.15661")
PARK2025 = Reference("park2025iclr", "Core Francisco Park, Andrew Lee, Ekdeep Singh Lubana, Yongyi Yang, Maya Okawa, "
                     "Kento Nishi, Martin Wattenberg and Hidenori Tanaka", "ICLR: In-Context Learning of "
                     "Representations", "International Conference on Learning Representations (ICLR)", 2025,
                     arxiv="2501.00070")
# Two blog posts name their authors only by their sites' handles.
TURN2026 = Reference("turn2026linear", "joeyturn", "Linear attention is unable to perform the In-Context Markov "
                     "Model / In-Context Learning of Representations task", "Blog post, June 24", 2026,
                     url="https://joeyturn.github.io/blog/attn-mms/")
CAWLEY2025 = Reference("cawley2025metarepicl", "cawley", "MetaRepICL: Is In-Context Learning Kernel Regression?",
                       "Blog post, February 1", 2025, url="https://cawley.dev/posts/metarepicl")
ISSERLIS1918 = Reference("isserlis1918formula", "Leon Isserlis", "On a formula for the product-moment coefficient of "
                         "any order of a normal frequency distribution in any number of variables",
                         "Biometrika 12(1/2):134-139", 1918)
COOKBOOK2012 = Reference("petersen2012cookbook", "Kaare Brandt Petersen and Michael Syskind Pedersen",
                         "The Matrix Cookbook", "Technical University of Denmark, version of November 15", 2012,
                         url="http://www2.compute.dtu.dk/pubdb/pubs/3274-full.html")
# ---- issue 11 (the rest of Zhang, Frei & Bartlett)
GARG2022 = Reference("garg2022what", "Shivam Garg, Dimitris Tsipras, Percy Liang and Gregory Valiant",
                     "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes",
                     "Advances in Neural Information Processing Systems (NeurIPS)", 2022, arxiv="2208.01066")
KARIMI2016 = Reference("karimi2016linear", "Hamed Karimi, Julie Nutini and Mark Schmidt",
                       "Linear Convergence of Gradient and Proximal-Gradient Methods Under the "
                       "Polyak-Łojasiewicz Condition", "European Conference on Machine Learning and Knowledge "
                       "Discovery in Databases (ECML PKDD)", 2016, arxiv="1608.04636")
# In-context algorithms (issue 14): conjugate gradients, its convergence bound, kernel smoothing.
HESTENES1952 = Reference("hestenes1952methods", "Magnus R. Hestenes and Eduard Stiefel", "Methods of conjugate "
                         "gradients for solving linear systems", "Journal of Research of the National Bureau of "
                         "Standards 49(6):409-436", 1952)
SAAD2003 = Reference("saad2003iterative", "Yousef Saad", "Iterative Methods for Sparse Linear Systems (2nd edition)",
                     "SIAM, Philadelphia", 2003)
NADARAYA1964 = Reference("nadaraya1964estimating", "Elizbar A. Nadaraya", "On estimating regression",
                         "Theory of Probability and Its Applications 9(1):141-142", 1964)
# Random-matrix theorems cited by derive/lu_asymptotics.py (issue 12).
MP1967 = Reference("marchenko1967distribution", "Vladimir A. Marchenko and Leonid A. Pastur", "Distribution of "
                   "eigenvalues for some sets of random matrices", "Mathematics of the USSR-Sbornik 1(4):457-483",
                   1967)
HASTIE2022 = Reference("hastie2022surprises", "Trevor Hastie, Andrea Montanari, Saharon Rosset and Ryan J. "
                       "Tibshirani", "Surprises in high-dimensional ridgeless least squares interpolation",
                       "Annals of Statistics 50(2):949-986", 2022, arxiv="1903.08560")
BACH2024 = Reference("bach2024high", "Francis Bach", "High-dimensional analysis of double descent for linear "
                     "regression with random projections", "SIAM Journal on Mathematics of Data Science 6(1):26-50",
                     2024, arxiv="2303.01372")
HULU2023 = Reference("hu2023universality", "Hong Hu and Yue M. Lu", "Universality laws for high-dimensional "
                     "learning with random features", "IEEE Transactions on Information Theory 69(3):1932-1964",
                     2023, arxiv="2009.07669")
__all__ += ["MP1967", "HASTIE2022", "BACH2024", "HULU2023"]
