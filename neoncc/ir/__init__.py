"""The graph IR every frontend produces and every pass and backend consumes."""

from neoncc.ir.graph import Graph, Node, Param

__all__ = ["Graph", "Node", "Param"]
